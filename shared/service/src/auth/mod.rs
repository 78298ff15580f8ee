//! Authentication (JWT → [`Principal`]) and the access policy.
//!
//! Tokens are issued by the main OmniBiz app. Two kinds of principal are
//! recognised from the claims:
//! - a **customer**: a `customerId` claim, or `type: "customer"` with `id`/`sub`;
//! - a **user** (business owner or admin): `id`, `userId` or `sub`, plus `role`.
//!
//! `exp` is required and enforced with a small leeway, as is `nbf` when
//! present; `iss` and `aud` are checked when pinned ([`KeyConfig`]). Each
//! algorithm is accepted only when configured: HS256 with the shared
//! `JWT_SECRET`, RS256 with a PEM public key. Every other algorithm
//! (including `none`) is refused.

mod policy;

pub use policy::{Access, can_reach_customer};

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use omnibiz_domain::{CustomerId, Party, Side, UserId, UserRole};
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 30;

/// Who is calling, as proven by a token. Names and ownership are looked up in
/// the store, never taken from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    User { id: UserId, role: UserRole },
    Customer { id: CustomerId },
}

impl Principal {
    pub fn side(&self) -> Side {
        match self {
            Self::User { .. } => Side::Owner,
            Self::Customer { .. } => Side::Customer,
        }
    }
    /// Hex id of the user or customer.
    pub fn id_hex(&self) -> String {
        match self {
            Self::User { id, .. } => id.to_hex(),
            Self::Customer { id } => id.to_hex(),
        }
    }
    /// The personal room / bus topic key, `user:<id>` or `customer:<id>`.
    pub fn room(&self) -> String {
        self.party().room()
    }

    /// Who this is, without the role.
    pub fn party(&self) -> Party {
        match self {
            Self::User { id, .. } => Party::Owner(*id),
            Self::Customer { id } => Party::Customer(*id),
        }
    }
}

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication token missing")]
    Missing,
    #[error("authentication token expired")]
    Expired,
    #[error("invalid authentication token")]
    Invalid,
    #[error("authentication token not valid yet (nbf)")]
    NotYetValid,
    #[error("token does not identify a user or customer")]
    UnknownSubject,
}

/// A verified token: who it names, and the times that bound its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    /// Its `exp`, in Unix seconds: a connection opened with it ends then
    /// (plus the leeway) unless a fresh token extends it.
    pub expires_at: u64,
    /// Its `iat`, in Unix seconds, when the token has one: a token issued
    /// before its principal's sessions were revoked is refused.
    pub issued_at: Option<u64>,
}

/// Verifies tokens. Cheap to clone behind an `Arc`.
pub struct Verifier {
    keys: Vec<(DecodingKey, Validation)>,
    leeway: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys.len()).finish()
    }
}

/// What a [`Verifier`] accepts: each algorithm only with its key given.
#[derive(Debug, Clone, Default)]
pub struct KeyConfig<'a> {
    /// HS256 tokens signed with this secret.
    pub hs256_secret: Option<&'a [u8]>,
    /// RS256 tokens signed with the private half of this PEM public key.
    pub rs256_public_pem: Option<&'a [u8]>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<&'a str>,
    /// When set, tokens must name this audience in `aud`.
    pub audience: Option<&'a str>,
}

impl KeyConfig<'_> {
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.leeway;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match self.issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

impl Verifier {
    /// HS256 with `secret`, and RS256 with `rsa_public_pem` when given.
    pub fn new(secret: &[u8], rsa_public_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        Self::with_leeway(secret, rsa_public_pem, LEEWAY_SECS)
    }

    /// [`Verifier::new`] with `leeway` seconds of clock skew allowed on `exp` and `nbf`.
    pub fn with_leeway(secret: &[u8], rsa_public_pem: Option<&[u8]>, leeway: u64) -> anyhow::Result<Self> {
        Self::from_config(&KeyConfig {
            hs256_secret: Some(secret),
            rs256_public_pem: rsa_public_pem,
            leeway,
            ..KeyConfig::default()
        })
    }

    /// Accepts exactly the algorithms whose key `config` gives (at least one).
    pub fn from_config(config: &KeyConfig<'_>) -> anyhow::Result<Self> {
        let mut keys = Vec::new();
        if let Some(secret) = config.hs256_secret {
            keys.push((DecodingKey::from_secret(secret), config.validation(Algorithm::HS256)));
        }
        if let Some(pem) = config.rs256_public_pem {
            let key =
                DecodingKey::from_rsa_pem(pem).map_err(|e| anyhow::anyhow!("reading the RS256 public key: {e}"))?;
            keys.push((key, config.validation(Algorithm::RS256)));
        }
        anyhow::ensure!(
            !keys.is_empty(),
            "no token algorithm is enabled: give JWT_SECRET (HS256) or JWT_PUBLIC_KEY_FILE (RS256)"
        );
        Ok(Self { keys, leeway: config.leeway })
    }

    /// Seconds of clock skew allowed on `exp` (and so past it, on a session).
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// Checks signature and expiry, then reads the principal from the claims.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_session(token).map(|s| s.principal)
    }

    /// [`Verifier::verify`], keeping the token's `exp` and `iat`.
    pub fn verify_session(&self, token: &str) -> Result<Session, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let (key, validation) =
            self.keys.iter().find(|(_, v)| v.algorithms.contains(&header.alg)).ok_or(AuthError::Invalid)?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            _ => AuthError::Invalid,
        })?;
        let time = |k: &str| data.claims.get(k).and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)));
        // `exp` is a required claim of the validation: present and numeric here.
        let expires_at = time("exp").ok_or(AuthError::Invalid)?;
        Ok(Session { principal: principal_from_claims(&data.claims)?, expires_at, issued_at: time("iat") })
    }
}

fn claim_str<'a>(claims: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    claims.get(key).and_then(Value::as_str)
}

/// Interprets the claim shapes of both principal kinds.
pub fn principal_from_claims(claims: &Map<String, Value>) -> Result<Principal, AuthError> {
    let parse_customer = |s: &str| s.parse::<CustomerId>().map_err(|_| AuthError::UnknownSubject);
    if let Some(cid) = claim_str(claims, "customerId") {
        return Ok(Principal::Customer { id: parse_customer(cid)? });
    }
    let id = claim_str(claims, "id").or_else(|| claim_str(claims, "userId")).or_else(|| claim_str(claims, "sub"));
    let id = id.ok_or(AuthError::UnknownSubject)?;
    if claim_str(claims, "type") == Some("customer") || claim_str(claims, "role") == Some("customer") {
        return Ok(Principal::Customer { id: parse_customer(id)? });
    }
    let id = id.parse::<UserId>().map_err(|_| AuthError::UnknownSubject)?;
    let role = UserRole::parse(claim_str(claims, "role").unwrap_or("business_owner"));
    Ok(Principal::User { id, role })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Mints an HS256 token in the main app's claim shape (for `omnibiz token`,
/// `seed`, tests and load tests).
pub fn mint_hs256(secret: &[u8], principal: &Principal, ttl_secs: u64) -> anyhow::Result<String> {
    let mut claims = Map::new();
    match principal {
        Principal::User { id, role } => {
            claims.insert("id".into(), id.to_hex().into());
            claims.insert("role".into(), role.as_str().into());
        }
        Principal::Customer { id } => {
            claims.insert("customerId".into(), id.to_hex().into());
            claims.insert("type".into(), "customer".into());
        }
    }
    let now = unix_now();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl_secs).into());
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn recognises_both_principal_shapes() {
        let u = "65a1b2c3d4e5f60718293a4b";
        assert!(matches!(
            principal_from_claims(&claims(json!({"id": u, "role": "business_owner"}))),
            Ok(Principal::User { role: UserRole::BusinessOwner, .. })
        ));
        assert!(matches!(principal_from_claims(&claims(json!({"userId": u}))), Ok(Principal::User { .. })));
        assert!(matches!(
            principal_from_claims(&claims(json!({"sub": u, "role": "admin"}))),
            Ok(Principal::User { role: UserRole::Admin, .. })
        ));
        assert!(matches!(principal_from_claims(&claims(json!({"customerId": u}))), Ok(Principal::Customer { .. })));
        assert!(matches!(
            principal_from_claims(&claims(json!({"type": "customer", "id": u}))),
            Ok(Principal::Customer { .. })
        ));
        assert_eq!(principal_from_claims(&claims(json!({"role": "admin"}))), Err(AuthError::UnknownSubject));
        assert_eq!(principal_from_claims(&claims(json!({"id": "nope"}))), Err(AuthError::UnknownSubject));
    }

    #[test]
    fn verify_round_trip_and_refusals() {
        let v = Verifier::new(b"secret", None).expect("verifier");
        let p = Principal::Customer { id: CustomerId::new() };
        let t = mint_hs256(b"secret", &p, 60).expect("mint");
        assert_eq!(v.verify(&t), Ok(p));
        let wrong = mint_hs256(b"other", &p, 60).expect("mint");
        assert_eq!(v.verify(&wrong), Err(AuthError::Invalid));
        assert_eq!(v.verify(""), Err(AuthError::Missing));
        assert_eq!(v.verify("garbage.token.here"), Err(AuthError::Invalid));
    }

    fn signed(claims: Value) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret"))
            .expect("sign")
    }

    #[test]
    fn nbf_is_checked_and_iss_and_aud_when_pinned() {
        let id = UserId::new().to_hex();
        let now = unix_now();
        let open = Verifier::from_config(&KeyConfig { hs256_secret: Some(b"secret"), leeway: 5, ..Default::default() })
            .expect("verifier");
        let early = signed(json!({"id": id, "exp": now + 600, "nbf": now + 120}));
        assert_eq!(open.verify(&early), Err(AuthError::NotYetValid));
        assert!(open.verify(&signed(json!({"id": id, "exp": now + 600, "nbf": now + 2}))).is_ok(), "within leeway");
        assert!(open.verify(&signed(json!({"id": id, "exp": now + 600, "iss": "anyone"}))).is_ok(), "not pinned");

        let pinned = Verifier::from_config(&KeyConfig {
            hs256_secret: Some(b"secret"),
            leeway: 5,
            issuer: Some("https://app.omnibiz.example"),
            audience: Some("messaging"),
            ..Default::default()
        })
        .expect("verifier");
        let good = json!({"id": id, "exp": now + 600, "iss": "https://app.omnibiz.example", "aud": "messaging"});
        assert!(pinned.verify(&signed(good.clone())).is_ok());
        for (k, v) in [("iss", json!("https://evil.example")), ("aud", json!("billing")), ("aud", json!(["billing"]))] {
            let mut c = good.clone();
            c[k] = v;
            assert_eq!(pinned.verify(&signed(c.clone())), Err(AuthError::Invalid), "{c}");
        }
        for k in ["iss", "aud"] {
            let mut c = good.clone();
            c.as_object_mut().expect("object").remove(k);
            assert_eq!(pinned.verify(&signed(c)), Err(AuthError::Invalid), "{k} missing");
        }
    }

    #[test]
    fn only_configured_algorithms_are_accepted() {
        assert!(Verifier::from_config(&KeyConfig::default()).is_err(), "nothing enabled is a start-up error");
    }

    #[test]
    fn a_session_keeps_the_tokens_times() {
        let v = Verifier::with_leeway(b"secret", None, 7).expect("verifier");
        assert_eq!(v.leeway(), 7);
        let p = Principal::User { id: UserId::new(), role: UserRole::BusinessOwner };
        let before = unix_now();
        let s = v.verify_session(&mint_hs256(b"secret", &p, 90).expect("mint")).expect("session");
        assert_eq!(s.principal, p);
        assert!((before + 90..=unix_now() + 90).contains(&s.expires_at), "{s:?}");
        assert!(s.issued_at.is_some_and(|t| (before..=unix_now()).contains(&t)), "{s:?}");
    }
}
