//! Target wiring: the generated secret of `serve`, and `api` refusing to
//! run without MongoDB or becoming ready while it is unreachable.

use std::sync::Arc;

use crate::common::{Backend, spawn_with};
use omnibiz::app::{Application, Target};
use omnibiz_service::auth::{Principal, mint_hs256};
use omnibiz_service::config::Settings;
use reqwest::StatusCode;

type Running = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Starts `api` with `settings` (it starts even with its backends down);
/// send on the returned channel to stop it.
async fn start_api(settings: &Settings) -> (String, tokio::sync::oneshot::Sender<()>, Running) {
    let app = Application::build(settings, Target::Api).await.expect("starts anyway");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (base, tx, task)
}

#[tokio::test]
async fn serve_without_jwt_secret_generates_and_keeps_one() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut settings = crate::common::settings(Backend::Sqlite, dir.path(), "unused");
    settings.jwt_secret = None;
    let app = spawn_with(Backend::Sqlite, settings, Target::Serve, Arc::clone(&dir)).await;
    let path = omnibiz::secret::secret_path(dir.path());
    let secret = std::fs::read_to_string(&path).expect("secret file written");
    assert_eq!(secret.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let b = crate::common::business(&app.store, "Gen", 1).await;
    let token =
        mint_hs256(secret.as_bytes(), &Principal::User { id: b.owner.id, role: b.owner.role }, 600).expect("mint");
    let (s, _) = app.get("/api/messages/conversations", &token).await;
    assert_eq!(s, StatusCode::OK, "tokens signed with the generated secret work");
    let (settings, dir) = app.stop().await;
    let app = spawn_with(Backend::Sqlite, settings, Target::Serve, dir).await;
    assert_eq!(std::fs::read_to_string(&path).expect("secret"), secret, "kept across restarts");
    let (s, _) = app.get("/api/messages/conversations", &token).await;
    assert_eq!(s, StatusCode::OK, "old tokens still valid after restart");
    app.finish().await;
}

#[tokio::test]
async fn api_requires_mongodb_and_jwt_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        port: 0,
        data_dir: dir.path().to_path_buf(),
        jwt_secret: Some(crate::common::SECRET.to_owned().into()),
        ..Settings::default()
    };
    let err = Application::build(&settings, Target::Api).await.err().expect("refused");
    assert!(format!("{err:#}").contains("MONGODB_URI"), "{err:#}");
    let settings = Settings { jwt_secret: None, mongodb_uri: Some(crate::common::mongo_uri().into()), ..settings };
    let err = Application::build(&settings, Target::Api).await.err().expect("refused");
    assert!(format!("{err:#}").contains("JWT_SECRET"), "{err:#}");
}

/// The `omnibiz` binary refuses to start on the k8s template's placeholder
/// secret or a short one, saying why; a strong one starts.
#[tokio::test]
async fn startup_refuses_a_placeholder_or_short_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (secret, why) in [
        ("change-me-to-the-main-app-secret", "placeholder"),
        ("set-by-your-secret-store", "placeholder"),
        ("only-twenty-bytes-xx", "at least 32"),
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"))
            .arg("serve")
            .env("JWT_SECRET", secret)
            .env("DATA_DIR", dir.path())
            .env("PORT", "0")
            .env_remove("MONGODB_URI")
            .env_remove("REDIS_URL")
            .output()
            .await
            .expect("run omnibiz");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{secret}: started");
        assert!(stderr.contains(why) && stderr.contains("openssl rand"), "{secret}: {stderr}");
    }
}

/// HS256 is opt-in: a pod configured for RS256 only needs no JWT_SECRET and
/// refuses HS256 tokens (even ones signed with a secret it was given for
/// download links); pinned `iss`/`aud` are enforced; RS256 tokens work.
#[tokio::test]
async fn rs256_only_pods_refuse_hs256_tokens() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shared/service/tests/fixtures");
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut settings = crate::common::settings(Backend::Sqlite, dir.path(), "unused");
    settings.jwt_public_key_file = Some(fixtures.join("rs256-public.pem"));
    settings.jwt_algorithms = Some("RS256".into());
    settings.jwt_issuer = Some("https://app.omnibiz.example".into());
    settings.jwt_audience = Some("messaging".into());
    let app = spawn_with(Backend::Sqlite, settings, Target::Serve, dir).await;
    let b = crate::common::business(&app.store, "Rsa", 0).await;
    let key = EncodingKey::from_rsa_pem(&std::fs::read(fixtures.join("rs256-private.pem")).expect("key")).expect("pem");
    let exp = omnibiz_service::auth::unix_now() + 600;
    let rs =
        |claims: serde_json::Value| jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign");
    let good = serde_json::json!({"id": b.owner.id.to_hex(), "role": "business_owner", "exp": exp,
        "iss": "https://app.omnibiz.example", "aud": "messaging"});
    let (s, body) = app.get("/api/messages/me", &rs(good.clone())).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let mut foreign = good.clone();
    foreign["aud"] = "billing".into();
    let (s, _) = app.get("/api/messages/me", &rs(foreign)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "another audience");
    let (s, _) = app.get("/api/messages/me", &b.owner_token).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "HS256 with the test secret (given to this app) is not accepted");
    app.finish().await;
}

#[tokio::test]
async fn api_is_not_ready_while_mongodb_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = Settings {
        host: [127, 0, 0, 1].into(),
        port: 0,
        data_dir: dir.path().to_path_buf(),
        jwt_secret: Some(crate::common::SECRET.to_owned().into()),
        // Nothing listens on port 9 (discard) here.
        mongodb_uri: Some(
            "mongodb://127.0.0.1:9/?directConnection=true&serverSelectionTimeoutMS=200".to_owned().into(),
        ),
        redis_url: Some(crate::common::redis_url().into()),
        ..Settings::default()
    };
    let (base, tx, task) = start_api(&settings).await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{base}/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "alive");
    let ready = http.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.expect("json");
    let reason = body["message"].as_str().expect("reason");
    assert!(reason.contains("mongodb"), "{body}");
    // The readiness answer is public: our words, not the driver's (hosts, users).
    assert!(!reason.contains("127.0.0.1:9") && !reason.to_lowercase().contains("server selection"), "{body}");
    assert!(!dir.path().join("omnibiz.db").exists(), "never falls back to the embedded store");
    let _ = tx.send(());
    task.await.expect("join").expect("stopped");
}

#[tokio::test]
async fn api_is_not_ready_while_redis_is_unreachable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings =
        crate::common::settings(Backend::Mongo, dir.path(), &format!("omnibiz_t_{}", bson::oid::ObjectId::new()));
    // Nothing listens on port 9 here.
    settings.redis_url = Some("redis://127.0.0.1:9".to_owned().into());
    let (base, tx, task) = start_api(&settings).await;
    let http = reqwest::Client::new();
    let mut body = serde_json::Value::Null;
    for _ in 0..40 {
        let r = http.get(format!("{base}/readyz")).send().await.expect("readyz");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "never ready without Redis");
        body = r.json().await.expect("json");
        if body["message"].as_str().is_some_and(|m| m.contains("bus")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(body["message"].as_str().is_some_and(|m| m.contains("redis")), "the reason names Redis: {body}");
    assert!(!body["message"].as_str().unwrap_or("").contains("127.0.0.1:9"), "no error text: {body}");
    let _ = tx.send(());
    task.await.expect("join").expect("stopped");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut settings = crate::common::settings(Backend::Sqlite, dir.path(), "unused");
    settings.cors_origins = "https://app.example".into();
    let app = spawn_with(Backend::Sqlite, settings, Target::Serve, dir).await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/messages/conversations"))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example").await.expect("preflight");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://app.example")
    );
    let other = preflight("https://evil.example").await.expect("preflight");
    assert!(other.headers().get("access-control-allow-origin").is_none(), "no CORS grant for other origins");
    assert_eq!(other.status(), reqwest::StatusCode::FORBIDDEN, "a clear refusal");
    let body: serde_json::Value = other.json().await.expect("json");
    assert_eq!((body["success"].clone(), body["code"].clone()), (false.into(), "ORIGIN_NOT_ALLOWED".into()), "{body}");
    app.finish().await;
}
