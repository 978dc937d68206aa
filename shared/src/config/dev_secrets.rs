//! Development mode's generated secrets, kept across restarts of the local server.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::{Config, MIN_SECRET_BYTES};

/// Development convenience: secrets generated on first start are kept in `dir` so that
/// tokens and password hashes survive a restart of the local server. Production never
/// reaches this (its secrets are required).
pub fn persist_dev_secrets(config: &mut Config, dir: &Path) -> std::io::Result<()> {
    if config.generated_secrets.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("dev-secrets.json");
    let stored: serde_json::Map<String, serde_json::Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => return Err(e),
    };
    let mut stored = stored;
    for name in &config.generated_secrets {
        let slot = match *name {
            "JWT_SECRET" => &mut config.jwt.secret,
            "PASSWORD_PEPPER" => &mut config.password_pepper,
            _ => continue,
        };
        match stored.get(*name).and_then(|v| v.as_str()) {
            Some(v) if v.len() >= MIN_SECRET_BYTES => *slot = SecretString::from(v.to_owned()),
            _ => {
                stored.insert((*name).to_owned(), slot.expose_secret().to_owned().into());
            }
        }
    }
    let text = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
    write_private(&path, &text)
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
