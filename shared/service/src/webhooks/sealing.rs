//! Webhook signing secrets at rest: sealed with AES-256-GCM under a key from
//! configuration, so a copy of the database (a backup, a replica, a dump in
//! a ticket) does not let anyone sign requests that a business's receiver
//! would trust.
//!
//! Stored form: `sealed:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`, the
//! key id bound in as associated data. Keys come from
//! `OMNIBIZ_WEBHOOK_SECRET_KEYS` (`id:base64-of-32-bytes`, comma-separated;
//! the first seals, every one opens), else one derived from the JWT secret.
//! Rotation: put a new key first and keep the old ones; each process reseals
//! at start what is not under the first key ([`SecretBox::needs_reseal`]),
//! then the old key can go. A stored secret without the prefix (written
//! before sealing existed) is read as it is and resealed the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac as _};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::Sha256;

const PREFIX: &str = "sealed:v1:";

/// Seals and opens endpoint secrets with the configured keys.
pub struct SecretBox {
    /// `(id, key)`, the sealing key first.
    keys: Vec<(String, LessSafeKey)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox").field("keys", &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>()).finish()
    }
}

fn key(bytes: &[u8]) -> anyhow::Result<LessSafeKey> {
    let k = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| anyhow::anyhow!("a key must be 32 bytes"))?;
    Ok(LessSafeKey::new(k))
}

impl SecretBox {
    /// Keys from their configuration form, `id:base64,id:base64` (the first seals).
    pub fn from_spec(spec: &str) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            // The entry itself is never shown: it may be a key.
            let (id, b64) = part.split_once(':').ok_or_else(|| {
                anyhow::anyhow!("OMNIBIZ_WEBHOOK_SECRET_KEYS: expected comma-separated id:base64-key entries")
            })?;
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                anyhow::bail!("OMNIBIZ_WEBHOOK_SECRET_KEYS: key id {id:?} must be letters, digits, - or _");
            }
            let raw = B64.decode(b64.trim()).map_err(|_| {
                anyhow::anyhow!(
                    "OMNIBIZ_WEBHOOK_SECRET_KEYS: key {id:?} is not base64 (`openssl rand -base64 32` makes one)"
                )
            })?;
            let k = key(&raw).map_err(|_| {
                anyhow::anyhow!("OMNIBIZ_WEBHOOK_SECRET_KEYS: key {id:?} has {} bytes; 32 are needed", raw.len())
            })?;
            if keys.iter().any(|(other, _)| other == id) {
                anyhow::bail!("OMNIBIZ_WEBHOOK_SECRET_KEYS: key id {id:?} appears twice");
            }
            keys.push((id.to_owned(), k));
        }
        anyhow::ensure!(!keys.is_empty(), "OMNIBIZ_WEBHOOK_SECRET_KEYS names no key");
        Ok(Self { keys })
    }

    /// One key derived from the JWT secret (id `jwt`), when none is configured.
    pub fn derived(jwt_secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(jwt_secret).expect("HMAC takes any key length");
        mac.update(b"omnibiz webhook secrets v1");
        let bytes = mac.finalize().into_bytes();
        // 32 bytes by construction.
        let k = key(&bytes).expect("a SHA-256 output is 32 bytes");
        Self { keys: vec![("jwt".to_owned(), k)] }
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        self.keys.first().map_or("", |(id, _)| id.as_str())
    }

    /// Seals a secret under the first key.
    pub fn seal(&self, plain: &str) -> String {
        let Some((id, k)) = self.keys.first() else { return plain.to_owned() };
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut buf = plain.as_bytes().to_vec();
        // Sealing with a valid key and a fresh nonce does not fail.
        let _ = k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(id.as_bytes()), &mut buf);
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("{PREFIX}{id}:{}", B64.encode(out))
    }

    /// The secret a stored value holds (a value from before sealing is returned as it is).
    pub fn open(&self, stored: &str) -> Result<String, String> {
        let Some(rest) = stored.strip_prefix(PREFIX) else { return Ok(stored.to_owned()) };
        let (id, b64) = rest.split_once(':').ok_or("a malformed sealed secret")?;
        let (_, k) =
            self.keys.iter().find(|(kid, _)| kid == id).ok_or_else(|| {
                format!("sealed under key {id:?}, which is not configured (OMNIBIZ_WEBHOOK_SECRET_KEYS)")
            })?;
        let raw = B64.decode(b64).map_err(|_| "a malformed sealed secret")?;
        if raw.len() < NONCE_LEN {
            return Err("a malformed sealed secret".into());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "a malformed sealed secret")?;
        let mut buf = sealed.to_vec();
        let plain = k.open_in_place(nonce, Aad::from(id.as_bytes()), &mut buf).map_err(|_| {
            format!("the sealed secret does not open with key {id:?} (altered, or another key with that id)")
        })?;
        String::from_utf8(plain.to_vec()).map_err(|_| "a sealed secret that is not text".into())
    }

    /// Whether a stored value is not sealed under the first key (plain, or an older key).
    pub fn needs_reseal(&self, stored: &str) -> bool {
        let current = format!("{PREFIX}{}:", self.current());
        !stored.starts_with(&current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ids: &[(&str, u8)]) -> String {
        ids.iter().map(|(id, b)| format!("{id}:{}", B64.encode([*b; 32]))).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn seals_opens_and_rotates() {
        let old = SecretBox::from_spec(&spec(&[("k1", 1)])).expect("keys");
        let sealed = old.seal("whsec_abc");
        assert!(sealed.starts_with("sealed:v1:k1:") && !sealed.contains("whsec_abc"), "{sealed}");
        assert_ne!(sealed, old.seal("whsec_abc"), "a fresh nonce each time");
        assert_eq!(old.open(&sealed).as_deref(), Ok("whsec_abc"));
        assert_eq!(old.open("whsec_legacy").as_deref(), Ok("whsec_legacy"), "stored before sealing");
        assert!(old.needs_reseal("whsec_legacy") && !old.needs_reseal(&sealed));

        // A new key first: old seals still open, and need resealing.
        let rotated = SecretBox::from_spec(&spec(&[("k2", 2), ("k1", 1)])).expect("keys");
        assert_eq!(rotated.open(&sealed).as_deref(), Ok("whsec_abc"));
        assert!(rotated.needs_reseal(&sealed));
        let resealed = rotated.seal(&rotated.open(&sealed).expect("open"));
        assert!(!rotated.needs_reseal(&resealed));
        // The old key dropped: the message says which key is missing.
        let new_only = SecretBox::from_spec(&spec(&[("k2", 2)])).expect("keys");
        assert!(new_only.open(&sealed).is_err_and(|e| e.contains("\"k1\"")));
        assert_eq!(new_only.open(&resealed).as_deref(), Ok("whsec_abc"));
    }

    #[test]
    fn tampering_and_bad_keys_are_refused() {
        let b = SecretBox::from_spec(&spec(&[("k1", 1)])).expect("keys");
        let sealed = b.seal("whsec_abc");
        let mut raw = B64.decode(sealed.rsplit(':').next().expect("b64")).expect("b64");
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(b.open(&format!("sealed:v1:k1:{}", B64.encode(&raw))).is_err());
        let other = SecretBox::from_spec(&spec(&[("k1", 9)])).expect("keys");
        assert!(other.open(&sealed).is_err(), "another key under the same id");
        for bad in ["", "k1", "k1:notbase64!", &format!("k1:{}", B64.encode([1u8; 16])), &spec(&[("a", 1), ("a", 2)])] {
            assert!(SecretBox::from_spec(bad).is_err(), "{bad:?}");
        }
        let d = SecretBox::derived(b"integration-test-secret-0123456789");
        assert_eq!(d.current(), "jwt");
        assert_eq!(d.open(&d.seal("s")).as_deref(), Ok("s"));
    }
}
