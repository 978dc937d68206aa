//! Black-box tests of the built `local-server` binary: started with an empty environment in
//! a temporary directory, spoken to over TCP, stopped with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::Server;

#[test]
fn starts_with_an_empty_environment_on_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);

    let health = server.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));

    let ready = server.get("/ready");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["database"], "ok");

    // Development mode made its SQLite file and kept its generated secrets under ./data.
    assert!(dir.path().join("data/local.db").exists());
    assert!(dir.path().join("data/dev-secrets.json").exists());

    let missing = server.get("/v1/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );

    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn migrate_subcommand_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("DATABASE_URL", "sqlite://./fresh/app.db")
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("fresh/app.db").exists());
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("PASSWORD_PEPPER", "0123456789abcdef0123456789abcdef")
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
