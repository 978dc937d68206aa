//! Computes `MIGRATIONS_DIGEST`: the digest of `migrations/postgres` this binary embeds, in
//! the form `template.yaml`'s `Migrations.MigrationsDigest` carries it: SHA-256 over each
//! `.sql` file's name and content, in name order. Any added, removed or edited migration
//! changes it.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/postgres");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    files.retain(|p| p.extension().is_some_and(|e| e == "sql"));
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(
            std::fs::read(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display())),
        );
        hasher.update([0]);
    }
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=MIGRATIONS_DIGEST=sha256:{hex}");
}
