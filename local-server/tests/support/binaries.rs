//! Paths of the workspace's compiled function binaries, for tests that need more than the
//! binary of their own package. Cargo only rebuilds a package's own binaries for its tests,
//! so the first call per test process runs `cargo build` for the six functions (a no-op
//! when they are up to date) — a stale binary would test old code.

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
        let mut args = vec!["build".to_owned()];
        for f in FUNCTIONS {
            args.extend(["-p".to_owned(), f.to_owned()]);
        }
        let status = std::process::Command::new(cargo)
            .args(&args)
            .status()
            .expect("running cargo build for the function binaries");
        assert!(status.success(), "building the function binaries failed");
        *built = true;
    }
    assert!(path.exists(), "no function binary at {}", path.display());
    path
}
