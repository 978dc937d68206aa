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
    for name in config.generated_secrets.clone() {
        let name = &name;
        if *name == "JWT_SIGNING_KEY" {
            keep_signing_key(config, &mut stored);
            continue;
        }
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

/// The generated `JWT_SIGNING_KEY`: the stored one if it is a key of the configured
/// algorithm (switching algorithms replaces it), else the new one, stored.
fn keep_signing_key(config: &mut Config, stored: &mut serde_json::Map<String, serde_json::Value>) {
    let Some(keys) = config.jwt.keys.as_mut() else {
        return;
    };
    let algorithm = keys.algorithm();
    match stored
        .get("JWT_SIGNING_KEY")
        .and_then(|v| v.as_str())
        .and_then(|pem| crate::auth::keys::parse_signing_key(algorithm, pem).ok())
    {
        Some(key) => keys.signing = key,
        None => {
            let pem = crate::auth::keys::pkcs8_pem(&keys.signing);
            stored.insert("JWT_SIGNING_KEY".to_owned(), pem.into());
        }
    }
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
