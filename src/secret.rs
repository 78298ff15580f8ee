//! The JWT secret. `JWT_SECRET` wins; in `serve` mode without it, a random
//! secret is generated once and kept in `<data_dir>/jwt-secret` (mode 0600),
//! so tokens stay valid across restarts. A given secret must be strong: at
//! least [`MIN_SECRET_BYTES`] bytes and not a template's placeholder —
//! anyone who guesses it can sign tokens for every account.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use omnibiz_service::config::Settings;
use rand::RngCore as _;
use secrecy::ExposeSecret as _;

/// Where the secret came from, for the startup message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// No HS256 secret: RS256 tokens only.
    None,
    Env,
    Generated(PathBuf),
    File(PathBuf),
}

pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt-secret")
}

/// The shortest secret accepted (RFC 7518 §3.2: an HS256 key at least as long as its 256-bit hash).
pub const MIN_SECRET_BYTES: usize = 32;

/// Words that mark a template's value, not a secret anyone chose.
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "replace_me",
    "your-secret",
    "your_secret",
    "yoursecret",
    "set-by-your-secret-store",
    "placeholder",
    "example",
];

/// Refuses a secret that is short, a placeholder, or one character repeated.
pub fn check_strength(secret: &[u8], from: &str) -> anyhow::Result<()> {
    let how = "generate one with `openssl rand -hex 32` and set it in the main app too";
    let text = String::from_utf8_lossy(secret).to_ascii_lowercase();
    if let Some(p) = PLACEHOLDERS.iter().find(|p| text.contains(*p)) {
        anyhow::bail!("{from} is a placeholder (it contains {p:?}), not a secret: {how}");
    }
    if secret.len() < MIN_SECRET_BYTES {
        anyhow::bail!("{from} is {} bytes; at least {MIN_SECRET_BYTES} are required: {how}", secret.len());
    }
    let distinct: std::collections::HashSet<&u8> = secret.iter().collect();
    if distinct.len() < 8 {
        anyhow::bail!("{from} uses only {} distinct characters: {how}", distinct.len());
    }
    Ok(())
}

/// The HS256 secret: `JWT_SECRET`, else (when `allow_generated`) the one in the data dir.
pub fn jwt_secret(settings: &Settings, allow_generated: bool) -> anyhow::Result<(Vec<u8>, SecretSource)> {
    if let Some(s) = &settings.jwt_secret {
        let secret = s.expose_secret().as_bytes().to_vec();
        check_strength(&secret, "JWT_SECRET")?;
        return Ok((secret, SecretSource::Env));
    }
    if !allow_generated {
        anyhow::bail!(
            "JWT_SECRET is required for HS256 tokens (the secret shared with the main OmniBiz app); \
             with RS256 tokens only, set JWT_PUBLIC_KEY_FILE and OMNIBIZ_JWT_ALGORITHMS=RS256"
        );
    }
    let path = secret_path(&settings.data_dir);
    if path.exists() {
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let s = s.trim();
        anyhow::ensure!(!s.is_empty(), "{} is empty; delete it to generate a new secret", path.display());
        check_strength(s.as_bytes(), &path.display().to_string())?;
        return Ok((s.as_bytes().to_vec(), SecretSource::File(path)));
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex).with_context(|| format!("writing {}", path.display()))?;
    Ok((hex.into_bytes(), SecretSource::Generated(path)))
}

/// The VAPID private key for Web Push: `OMNIBIZ_VAPID_PRIVATE_KEY`, else
/// (when `allow_generated`: `serve`) the one in `<data_dir>/vapid.key`,
/// generated on first start. `None`: pods without a key have no Web Push.
pub fn vapid_private_key(settings: &Settings, allow_generated: bool) -> anyhow::Result<Option<String>> {
    if let Some(k) = &settings.vapid_private_key {
        return Ok(Some(k.expose_secret().trim().to_owned()));
    }
    if !allow_generated {
        return Ok(None);
    }
    let path = settings.data_dir.join("vapid.key");
    if path.exists() {
        let s = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Some(s.trim().to_owned()));
    }
    std::fs::create_dir_all(&settings.data_dir).with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let key = omnibiz_service::notify::webpush::Vapid::generate_private();
    write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a VAPID key for Web Push (keep it: browsers subscribed with it)");
    Ok(Some(key))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_refused_with_the_reason() {
        let why = |s: &str| check_strength(s.as_bytes(), "JWT_SECRET").expect_err(s).to_string();
        assert!(why("change-me-to-the-main-app-secret").contains("placeholder"));
        assert!(why("set-by-your-secret-store").contains("placeholder"));
        assert!(why("short-but-random-9f2c").contains("at least 32"));
        assert!(why(&"ab".repeat(20)).contains("distinct"));
        check_strength(b"integration-test-secret-0123456789", "JWT_SECRET").expect("strong enough");
        check_strength(b"0f6c2b9d41e7a8355c0de1f2a3b4c5d6e7f8091a2b3c4d5e", "JWT_SECRET").expect("random hex");
    }
}
