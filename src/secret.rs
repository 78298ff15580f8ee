//! The JWT secret. `JWT_SECRET` wins; in `serve` mode without it, a random
//! secret is generated once and kept in `<data_dir>/jwt-secret` (mode 0600),
//! so tokens stay valid across restarts.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use omnibiz_service::config::Settings;
use rand::RngCore as _;
use secrecy::ExposeSecret as _;

/// Where the secret came from, for the startup message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env,
    Generated(PathBuf),
    File(PathBuf),
}

pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-secret")
}

/// The HS256 secret: `JWT_SECRET`, else (when `allow_generated`) the one in the data dir.
pub fn jwt_secret(settings: &Settings, allow_generated: bool) -> anyhow::Result<(Vec<u8>, SecretSource)> {
    if let Some(s) = &settings.jwt_secret {
        return Ok((s.expose_secret().as_bytes().to_vec(), SecretSource::Env));
    }
    if !allow_generated {
        anyhow::bail!("JWT_SECRET is required for this target (the secret shared with the main OmniBiz app)");
    }
    let path = secret_path(&settings.data_dir);
    if path.exists() {
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let s = s.trim();
        anyhow::ensure!(!s.is_empty(), "{} is empty; delete it to generate a new secret", path.display());
        return Ok((s.as_bytes().to_vec(), SecretSource::File(path)));
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex).with_context(|| format!("writing {}", path.display()))?;
    Ok((hex.into_bytes(), SecretSource::Generated(path)))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}
