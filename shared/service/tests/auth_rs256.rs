//! RS256 tokens (the main app may sign with a private key): accepted with the
//! matching public key, refused with another key, and HS256 keeps working.
//! The key pair in `fixtures/` exists only for this test.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use omnibiz_domain::{CustomerId, UserId, UserRole};
use omnibiz_service::auth::{AuthError, Principal, Verifier, unix_now};
use serde_json::json;

const PRIVATE: &[u8] = include_bytes!("fixtures/rs256-private.pem");
const PUBLIC: &[u8] = include_bytes!("fixtures/rs256-public.pem");

fn rs256(claims: serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(PRIVATE).expect("private key");
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign")
}

#[test]
fn rs256_tokens_verify_with_the_public_key() {
    let v = Verifier::new(b"hs-secret", Some(PUBLIC)).expect("verifier");
    let user = UserId::new();
    let t = rs256(json!({"sub": user.to_hex(), "role": "admin", "exp": unix_now() + 60}));
    assert_eq!(v.verify(&t), Ok(Principal::User { id: user, role: UserRole::Admin }));
    let customer = CustomerId::new();
    let t = rs256(json!({"customerId": customer.to_hex(), "exp": unix_now() + 60}));
    assert_eq!(v.verify(&t), Ok(Principal::Customer { id: customer }));
    let hs = omnibiz_service::auth::mint_hs256(b"hs-secret", &Principal::Customer { id: customer }, 60).expect("hs");
    assert_eq!(v.verify(&hs), Ok(Principal::Customer { id: customer }), "HS256 still accepted");
    let expired = rs256(json!({"sub": user.to_hex(), "exp": unix_now() - 3600}));
    assert_eq!(v.verify(&expired), Err(AuthError::Expired));
}

#[test]
fn rs256_tokens_are_refused_without_the_key() {
    let t = rs256(json!({"sub": UserId::new().to_hex(), "exp": unix_now() + 60}));
    let hs_only = Verifier::new(b"hs-secret", None).expect("verifier");
    assert_eq!(hs_only.verify(&t), Err(AuthError::Invalid));
    assert!(Verifier::new(b"x", Some(b"not a pem")).is_err(), "a bad key fails at start, not per request");
}
