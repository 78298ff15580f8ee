//! A browser front end on its own origin, as the seed's React app is served:
//! headless Chromium (Debian's package) driven by `playwright-core` loads a
//! page from another port, which opens sockets with the browser build of the
//! official socket.io-client (default transports: polling, then the upgrade)
//! and calls REST with `Authorization` — against `serve`, and against an
//! `api` + `gateway` pair; with and without credentials; from a refused
//! origin. `scripts/test.sh` installs chromium and the npm packages.

use std::sync::Arc;

use crate::common::{Backend, Business, business, node_dir, open, settings, spawn_with};
use omnibiz::app::Target;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: run scripts/test.sh (it installs chromium)");
    path
}

struct Page<'a> {
    api: &'a str,
    socket: &'a str,
    port: u16,
    owner_token: &'a str,
    customer_token: &'a str,
    conv: &'a str,
    credentials: bool,
}

impl<'a> Page<'a> {
    /// The page on `port`, as business `b`'s owner and first customer, in `conv`.
    fn new(api: &'a str, socket: &'a str, port: u16, b: &'a Business, conv: &'a str, credentials: bool) -> Self {
        Self {
            api,
            socket,
            port,
            owner_token: &b.owner_token,
            customer_token: &b.customer_tokens[0],
            conv,
            credentials,
        }
    }
}

/// Runs `tests/node/browser.mjs`; returns what the page saw.
async fn browse(p: &Page<'_>) -> Value {
    let out = tokio::process::Command::new("node")
        .arg("browser.mjs")
        .current_dir(node_dir("playwright-core"))
        .env("CHROMIUM", chromium())
        .env("API", p.api)
        .env("SOCKET", p.socket)
        .env("PAGE_PORT", p.port.to_string())
        .env("OWNER_TOKEN", p.owner_token)
        .env("CUSTOMER_TOKEN", p.customer_token)
        .env("CONV", p.conv)
        .env("CREDENTIALS", p.credentials.to_string())
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "browser.mjs: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The whole seed flow worked from the page: REST, polling, the upgrade, a message.
fn assert_worked(seen: &Value) {
    assert_eq!(seen["rest"]["status"], 200, "{seen}");
    assert_eq!(seen["rest"]["success"], true, "{seen}");
    assert_eq!(seen["firstTransport"], "polling", "the client's default starts with polling: {seen}");
    assert_eq!(seen["upgradedTo"], "websocket", "then upgrades: {seen}");
    assert_eq!(seen["joined"], true, "{seen}");
    assert_eq!(seen["sendAck"], true, "{seen}");
    assert_eq!(seen["received"], "hello from the browser", "{seen}");
    assert!(seen.get("socketError").is_none() && seen.get("restError").is_none(), "{seen}");
}

/// The browser refused both: what a front end on an unlisted origin sees.
fn assert_refused(seen: &Value) {
    assert!(seen["restError"].is_string(), "REST refused: {seen}");
    assert!(seen["socketError"].as_str().is_some_and(|e| e.contains("xhr poll error")), "socket refused: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_any_origin_works_with_serve_by_default() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let s = settings(Backend::Sqlite, dir.path(), "unused");
    assert_eq!(s.cors_origins, "*", "the default");
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Browser", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut page = Page::new(&app.base, &app.base, free_port(), &b, &conv, false);
    assert_worked(&browse(&page).await);
    // `*` grants no credentials, as with socket.io's `cors: {origin: "*"}`:
    // the browser itself refuses a `withCredentials` client.
    page.credentials = true;
    assert_refused(&browse(&page).await);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_origins_get_credentials_and_others_a_clear_refusal() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut s = settings(Backend::Sqlite, dir.path(), "unused");
    s.cors_origins = format!("https://app.example.com, {origin}");
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Named", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut page = Page::new(&app.base, &app.base, port, &b, &conv, true);
    assert_worked(&browse(&page).await);
    page.credentials = false;
    assert_worked(&browse(&page).await);
    // The same front end served from a port nobody listed.
    page.port = free_port();
    assert_refused(&browse(&page).await);

    // What the server answers, header by header.
    let http = reqwest::Client::new();
    let handshake = format!("{}/socket.io/?EIO=4&transport=polling", app.base);
    let r = http.get(&handshake).header("Origin", &origin).send().await.expect("allowed");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let r = http
        .request(reqwest::Method::OPTIONS, &handshake)
        .header("Origin", &origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "authorization,x-client")
        .send()
        .await
        .expect("preflight");
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], origin.as_str());
    let allowed = r.headers()["access-control-allow-headers"].to_str().expect("ascii").to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("x-client"), "{allowed}");
    let r = http.get(&handshake).header("Origin", "https://evil.example").send().await.expect("refused");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "ORIGIN_NOT_ALLOWED", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("https://evil.example")), "{body}");
    // Browsers do not apply CORS to websockets: the server checks `Origin` itself.
    let ws = format!("{}/socket.io/?EIO=4&transport=websocket", app.base.replacen("http", "ws", 1));
    let mut req = ws.as_str().into_client_request().expect("request");
    req.headers_mut().insert("Origin", "https://evil.example".parse().expect("header"));
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("a websocket from a refused origin must get 403, got {:?}", other.map(|_| ())),
    }
    let mut req = ws.as_str().into_client_request().expect("request");
    req.headers_mut().insert("Origin", origin.parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(req).await.is_ok(), "a listed origin upgrades");
    // Clients without an Origin (servers, Node) are never refused.
    assert_eq!(http.get(&handshake).send().await.expect("no origin").status(), 200);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_its_own_origin_works_with_an_api_and_gateway_pair() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let port = free_port();
    let db = format!("omnibiz_browser_{}", bson::oid::ObjectId::new());
    let mut s = settings(Backend::Mongo, dir.path(), &db);
    s.cors_origins = format!("http://127.0.0.1:{port}");
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    let b = business(&api.store, "Pods", 1).await;
    let conv = open(&api, &b, 0).await;
    let page = Page::new(&api.base, &gw.base, port, &b, &conv, true);
    assert_worked(&browse(&page).await);
    gw.stop().await;
    api.finish().await;
}
