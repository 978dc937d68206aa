//! The crate's integration tests, one module a file, built as one test binary: linking
//! is paid once per crate instead of once per file (`autotests = false` in Cargo.toml).

mod access_log;
mod blackbox;
mod hostile;
mod keys;
mod lambda;
mod observability;
mod openapi;
mod slow_clients;
mod storm;
mod support;
mod traces;
