//! Web Push to the standards: the message encrypted for one browser
//! (RFC 8291, `aes128gcm`), the request signed with our VAPID key
//! (RFC 8292), posted to the push service the browser chose (RFC 8030)
//! with `TTL`, `Urgency` and a `Topic` that collapses one conversation's
//! notifications into one.
//!
//! The encryption is `web-push-native`'s (RustCrypto's P-256, HKDF and
//! AES-GCM); this module holds the keys, checks what browsers send us,
//! signs the VAPID token and sets the headers. (The crate's own VAPID
//! helper leaves the port out of the `aud` claim, which RFC 8292 says is
//! the push resource's origin: a push service on a port other than 443
//! refuses it; an independent verifier in tests/push caught it.)

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use web_push_native::jwt_simple::algorithms::{ECDSAP256KeyPairLike as _, ES256KeyPair};
use web_push_native::jwt_simple::claims::Claims;
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

/// The most plaintext one push message carries: RFC 8291 limits the
/// encrypted body to 4 096 bytes, of which the header takes 86 (salt,
/// record size, the 65-byte key), the AEAD tag 16 and the padding delimiter 1.
pub const MAX_PAYLOAD: usize = 4096 - 86 - 16 - 1;

/// How long a VAPID signature is valid: RFC 8292 allows at most 24 hours.
const SIGNATURE_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// Our VAPID identity: the key pair push services check signatures against,
/// and the contact (`mailto:` or `https:`) they may write to.
pub struct Vapid {
    pair: ES256KeyPair,
    public: String,
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid").field("public", &self.public).field("subject", &self.subject).finish_non_exhaustive()
    }
}

impl Vapid {
    /// From the private key as web-push tools print it (the 32-byte P-256
    /// scalar, base64url) and the contact.
    pub fn from_private(private_b64: &str, subject: &str) -> anyhow::Result<Self> {
        let raw = URL_SAFE_NO_PAD
            .decode(private_b64.trim().trim_end_matches('='))
            .map_err(|e| anyhow::anyhow!("the VAPID private key is not base64url: {e}"))?;
        anyhow::ensure!(raw.len() == 32, "the VAPID private key must be 32 bytes (base64url), not {}", raw.len());
        let pair = ES256KeyPair::from_bytes(&raw)
            .map_err(|e| anyhow::anyhow!("the VAPID private key is not a P-256 key: {e}"))?;
        let subject = subject.trim();
        anyhow::ensure!(
            subject.starts_with("mailto:") || subject.starts_with("https://"),
            "the VAPID subject must be a mailto: or https: URL (push services write there about problems), not {subject:?}"
        );
        let public = URL_SAFE_NO_PAD.encode(
            web_push_native::jwt_simple::algorithms::ECDSAP256PublicKeyLike::public_key(&pair.public_key())
                .to_bytes_uncompressed(),
        );
        Ok(Self { pair, public, subject: subject.to_owned() })
    }

    /// A new private key, base64url (what [`Vapid::from_private`] reads).
    pub fn generate_private() -> String {
        URL_SAFE_NO_PAD.encode(ES256KeyPair::generate().to_bytes())
    }

    /// The public key browsers pass to `pushManager.subscribe` as
    /// `applicationServerKey` (65 bytes uncompressed, base64url).
    pub fn public_key(&self) -> &str {
        &self.public
    }
}

/// A browser's keys, checked.
pub struct BrowserKeys {
    p256dh: PublicKey,
    auth: Auth,
}

impl std::fmt::Debug for BrowserKeys {
    // The auth secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserKeys").finish_non_exhaustive()
    }
}

/// Checks the keys of a subscription as `PushSubscription.toJSON()` gives
/// them: `p256dh` a P-256 point, `auth` 16 bytes, both base64url.
pub fn browser_keys(p256dh: &str, auth: &str) -> Result<BrowserKeys, String> {
    let decode = |what: &str, s: &str| {
        URL_SAFE_NO_PAD.decode(s.trim().trim_end_matches('=')).map_err(|_| format!("keys.{what}: not base64url"))
    };
    let point = decode("p256dh", p256dh)?;
    let p256dh = PublicKey::from_sec1_bytes(&point).map_err(|_| "keys.p256dh: not a P-256 public key".to_owned())?;
    let secret = decode("auth", auth)?;
    let secret: [u8; 16] =
        secret.as_slice().try_into().map_err(|_| format!("keys.auth: must be 16 bytes, not {}", secret.len()))?;
    Ok(BrowserKeys { p256dh, auth: Auth::from(secret) })
}

/// How soon the push service should wake the device (RFC 8030 §5.3).
#[derive(Debug, Clone, Copy)]
pub enum Urgency {
    Normal,
    High,
}

/// The request for one message to one browser: encrypted, signed, with
/// `TTL`, `Urgency` and `Topic` (at most 32 base64url characters).
pub fn request(
    vapid: &Vapid,
    endpoint: &str,
    keys: &BrowserKeys,
    payload: &[u8],
    ttl: Duration,
    urgency: Urgency,
    topic: &str,
) -> Result<http::Request<Vec<u8>>, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(format!(
            "the notification is {} bytes; a push message carries at most {MAX_PAYLOAD}",
            payload.len()
        ));
    }
    debug_assert!(topic.len() <= 32 && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let url = url::Url::parse(endpoint).map_err(|e| format!("endpoint: {e}"))?;
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("endpoint: {e}"))?;
    let mut req = WebPushBuilder::new(uri, keys.p256dh, keys.auth)
        .build(payload.to_vec())
        .map_err(|e| format!("encrypting the notification: {e}"))?;
    // RFC 8292 §2: `aud` is the origin (scheme, host and any port), `exp` within 24 h, `sub` a contact.
    let claims = Claims::create(SIGNATURE_LIFETIME.into())
        .with_audience(url.origin().ascii_serialization())
        .with_subject(&vapid.subject);
    let token = vapid.pair.sign(claims).map_err(|e| format!("signing the VAPID token: {e}"))?;
    let authorization = format!("vapid t={token}, k={}", vapid.public);
    let h = req.headers_mut();
    h.insert(http::header::AUTHORIZATION, http::HeaderValue::from_str(&authorization).map_err(|e| e.to_string())?);
    h.insert("ttl", http::HeaderValue::from(ttl.as_secs()));
    h.insert(
        "urgency",
        http::HeaderValue::from_static(match urgency {
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }),
    );
    if let Ok(v) = http::HeaderValue::from_str(topic) {
        h.insert("topic", v);
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use web_push_native::p256::SecretKey;
    use web_push_native::p256::elliptic_curve::sec1::ToEncodedPoint as _;

    #[test]
    fn a_request_decrypts_with_the_browser_key_and_carries_the_headers() {
        let vapid = Vapid::from_private(&Vapid::generate_private(), "mailto:ops@example.com").expect("vapid");
        assert_eq!(URL_SAFE_NO_PAD.decode(vapid.public_key()).expect("b64").len(), 65);
        let browser = SecretKey::random(&mut web_push_native::p256::elliptic_curve::rand_core::OsRng);
        let point = URL_SAFE_NO_PAD.encode(browser.public_key().to_encoded_point(false).as_bytes());
        let auth = URL_SAFE_NO_PAD.encode([7u8; 16]);
        let keys = browser_keys(&point, &auth).expect("keys");
        let req = request(
            &vapid,
            "https://push.example.net:8443/send/abc",
            &keys,
            b"{\"hello\":1}",
            Duration::from_secs(600),
            Urgency::High,
            "c65a1b2c3d4e5f60718293a4b",
        )
        .expect("request");
        assert_eq!(req.headers()["ttl"], "600");
        assert_eq!(req.headers()["urgency"], "high");
        assert_eq!(req.headers()["topic"], "c65a1b2c3d4e5f60718293a4b");
        assert_eq!(req.headers()["content-encoding"], "aes128gcm");
        let authz = req.headers()["authorization"].to_str().expect("ascii");
        assert!(authz.starts_with("vapid t=") && authz.ends_with(&format!("k={}", vapid.public_key())), "{authz}");
        let token = authz.trim_start_matches("vapid t=").split(',').next().expect("token");
        let claims = token.split('.').nth(1).expect("claims");
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
        assert_eq!(claims["aud"], "https://push.example.net:8443", "the origin, port included");
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let plain = web_push_native::decrypt(req.body().clone(), &browser, &Auth::from([7u8; 16])).expect("decrypts");
        assert_eq!(plain, b"{\"hello\":1}");
    }

    #[test]
    fn bad_keys_and_oversized_payloads_are_refused_with_the_reason() {
        assert!(browser_keys("not base64!", "AAAA").expect_err("refused").contains("p256dh"));
        assert!(browser_keys(&URL_SAFE_NO_PAD.encode([4u8; 65]), "AAAA").expect_err("refused").contains("P-256"));
        assert!(Vapid::from_private("AAAA", "mailto:a@b").expect_err("refused").to_string().contains("32 bytes"));
        assert!(Vapid::from_private(&Vapid::generate_private(), "ops@example.com").is_err());
        let vapid = Vapid::from_private(&Vapid::generate_private(), "https://example.com").expect("vapid");
        let browser = SecretKey::random(&mut web_push_native::p256::elliptic_curve::rand_core::OsRng);
        let point = URL_SAFE_NO_PAD.encode(browser.public_key().to_encoded_point(false).as_bytes());
        let keys = browser_keys(&point, &URL_SAFE_NO_PAD.encode([1u8; 16])).expect("keys");
        let big = vec![b'x'; MAX_PAYLOAD + 1];
        let e = request(&vapid, "https://p.example/x", &keys, &big, Duration::from_secs(1), Urgency::Normal, "t")
            .expect_err("refused");
        assert!(e.contains("at most"), "{e}");
        let fits = vec![b'x'; MAX_PAYLOAD];
        let req = request(&vapid, "https://p.example/x", &keys, &fits, Duration::from_secs(1), Urgency::Normal, "t")
            .expect("fits");
        assert!(req.body().len() <= 4096, "{}", req.body().len());
    }
}
