//! Paths of the workspace's compiled function binaries, for tests that need more than the
//! binary of their own package. Cargo only rebuilds a package's own binaries for its tests,
//! so the first call per test process has cargo bring the workspace's test build up to date
//! (`cargo test --workspace --no-run`) — a stale binary would test old code.
//!
//! That build makes the same six binaries the function crates' own tests run, with the same
//! features, so after `cargo test --workspace` it has nothing to do. A build of the functions
//! alone would compile `shared` once more, for Postgres only (40 s cold, and again after every
//! change to `shared`); that Lambda binaries carry no SQLite is checked on what ships, the
//! `sam build` bootstraps, in CI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

pub const FUNCTIONS: [&str; 6] = ["auth", "tasks", "admin", "health", "migrate", "mail"];

pub fn function_binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<bool>> = OnceLock::new();
    // target/<profile>/deps/<test binary> → target/<profile>/<name>
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    let guard = BUILT.get_or_init(|| Mutex::new(false));
    let mut built = guard.lock().unwrap();
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["test", "--workspace", "--no-run", "--quiet"]);
        if dir.file_name().is_some_and(|profile| profile == "release") {
            build.arg("--release");
        }
        // The variables Cargo set for this test process describe this package, not the
        // build: inherited, they would change the fingerprint of every dependency whose
        // build script watches them (ring watches CARGO_MANIFEST_DIR), and the next
        // `cargo test` and this build would rebuild ring, rustls and sqlx for each other.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_BIN_EXE_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_BIN_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                ]
                .contains(&&*name)
            {
                build.env_remove(&*name);
            }
        }
        let status = build
            .status()
            .expect("running cargo for the function binaries");
        assert!(status.success(), "building the function binaries failed");
        *built = true;
    }
    assert!(path.exists(), "no function binary at {}", path.display());
    path
}
