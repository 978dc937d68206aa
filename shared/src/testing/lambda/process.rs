//! A compiled function binary as a child process of the test, pointed at an emulator.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Instant,
};

use super::RuntimeEmulator;

/// A function binary running as a child process against an emulator; killed on drop.
/// Its standard output (the function's logs) is kept in a file.
#[derive(Debug)]
pub struct FunctionProcess {
    pub child: Child,
    pub started: Instant,
    stdout: tempfile::NamedTempFile,
}

impl FunctionProcess {
    /// Starts `binary` with only the Lambda variables plus `env` (nothing inherited).
    pub fn spawn(
        binary: &Path,
        emulator: &RuntimeEmulator,
        function_name: &str,
        env: &[(&str, &str)],
    ) -> Self {
        let stdout = tempfile::NamedTempFile::new().expect("a log file");
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(emulator.lambda_env(function_name))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout.reopen().expect("reopening the log file"))
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let child = command.spawn().expect("starting the function binary");
        Self {
            child,
            started,
            stdout,
        }
    }

    /// Everything the function has written to standard output so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.stdout.path()).unwrap_or_default()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
