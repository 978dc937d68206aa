//! The crate's integration tests, one module a file, built as one test binary: linking
//! is paid once per crate instead of once per file (`autotests = false` in Cargo.toml).

mod migrations;
mod repairs;
mod stack;
mod support;
