//! Test harness: builds the same `Application` the binary runs, on port 0,
//! with a fresh database per test (a temporary SQLite file, or a fresh
//! MongoDB database on the server in `MONGODB_URI`), and typed helpers.
#![allow(unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use omnibiz::app::{Application, Target};
use omnibiz_domain::{Customer, User};
use omnibiz_service::auth::{Principal, mint_hs256};
use omnibiz_service::config::Settings;
use omnibiz_store::mongo::MongoStore;
use omnibiz_store::sqlite::SqliteStore;
use omnibiz_store::{Store, fixtures};
use reqwest::StatusCode;
use serde_json::Value;

pub const SECRET: &str = "integration-test-secret-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Mongo,
}

pub fn mongo_uri() -> String {
    std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run scripts/test.sh, which starts a MongoDB-compatible server")
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").expect("REDIS_URL is not set: run scripts/test.sh, which starts Redis")
}

pub fn init_logs() {
    if std::env::var("TEST_LOG").is_ok() {
        std::mem::forget(omnibiz_service::telemetry::init_tracing(
            omnibiz_service::config::LogFormat::Text,
            "debug",
            None,
        ));
    }
}

/// Settings for one test app; `data_dir` and the database name are the test's own.
/// Rate limits out of the way of tests that are about something else (the
/// limits' own tests set theirs): every `*_RATE` variable, for child processes.
pub const GENEROUS_RATES: &[(&str, &str)] = &[
    ("OMNIBIZ_SEND_RATE", "100000"),
    ("OMNIBIZ_WRITE_RATE", "100000"),
    ("OMNIBIZ_RECEIPT_RATE", "100000"),
    ("OMNIBIZ_READ_RATE", "100000"),
    ("OMNIBIZ_SEARCH_RATE", "100000"),
    ("OMNIBIZ_UPLOAD_RATE", "100000"),
    ("OMNIBIZ_TYPING_RATE", "100000"),
    ("OMNIBIZ_JOIN_RATE", "100000"),
    // Overload refusals are tested on their own (tests/e2e/overload.rs); a
    // debug build under a parallel test run must not trip them elsewhere.
    ("OMNIBIZ_SEND_CONCURRENCY", "100000"),
];

pub fn settings(backend: Backend, data_dir: &std::path::Path, database: &str) -> Settings {
    let generous = 100_000;
    let mut s = Settings {
        send_rate: generous,
        write_rate: generous,
        receipt_rate: generous,
        read_rate: generous,
        search_rate: generous,
        upload_rate: generous,
        typing_rate: generous,
        join_rate: generous,
        send_concurrency: 100_000,
        host: [127, 0, 0, 1].into(),
        port: 0,
        data_dir: data_dir.to_path_buf(),
        jwt_secret: Some(SECRET.to_owned().into()),
        shutdown_grace_secs: 5,
        drain_secs: 1,
        ..Settings::default()
    };
    if backend == Backend::Mongo {
        s.mongodb_uri = Some(mongo_uri().into());
        s.mongodb_database = Some(database.to_owned());
        s.redis_url = Some(redis_url().into());
    }
    s
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    /// A second handle on the app's database, for fixtures and checks.
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub settings: Settings,
    pub dir: Arc<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    mongo: Option<MongoStore>,
}

/// Starts an app and waits until `/readyz` says ready.
pub async fn spawn_app(backend: Backend) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_api_{}", bson::oid::ObjectId::new());
    let target = if backend == Backend::Mongo { Target::Api } else { Target::Serve };
    spawn_with(backend, settings(backend, dir.path(), &db), target, dir).await
}

pub async fn spawn_with(backend: Backend, settings: Settings, target: Target, dir: Arc<tempfile::TempDir>) -> TestApp {
    init_logs();
    let app = Application::build(&settings, target).await.expect("build app");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let (store, mongo): (Arc<dyn Store>, Option<MongoStore>) = match backend {
        Backend::Sqlite => (Arc::new(SqliteStore::open(&settings.data_dir.join("omnibiz.db")).expect("open")), None),
        Backend::Mongo => {
            let m = MongoStore::connect(&mongo_uri(), settings.mongodb_database.as_deref()).await.expect("connect");
            (Arc::new(m.clone()), Some(m))
        }
    };
    let app = TestApp {
        base,
        http: reqwest::Client::new(),
        store,
        backend,
        settings,
        dir,
        stop: Some(tx),
        task: Some(task),
        mongo,
    };
    app.wait_ready().await;
    app
}

impl TestApp {
    pub async fn wait_ready(&self) {
        assert!(becomes_ready(&self.base).await, "app at {} never became ready", self.base);
    }

    /// Graceful stop; returns the settings so a test can start it again.
    pub async fn stop(mut self) -> (Settings, Arc<tempfile::TempDir>) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("app stopped cleanly");
        }
        (self.settings.clone(), Arc::clone(&self.dir))
    }

    /// Stops the app and drops its MongoDB database.
    pub async fn finish(self) {
        let mongo = self.mongo.clone();
        self.stop().await;
        if let Some(m) = mongo {
            m.drop_database().await.expect("drop test database");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status} non-JSON body: {text}"));
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn send(&self, token: &str, conversation: &str, content: &str) -> (StatusCode, Value) {
        self.post("/api/messages/send", token, serde_json::json!({"conversationId": conversation, "content": content}))
            .await
    }
}

pub fn token(p: &Principal) -> String {
    mint_hs256(SECRET.as_bytes(), p, 3600).expect("mint")
}

/// A business with customers, and tokens for everyone.
pub struct Business {
    pub owner: User,
    pub owner_token: String,
    pub customers: Vec<Customer>,
    pub customer_tokens: Vec<String>,
}

pub async fn business(store: &Arc<dyn Store>, name: &str, customers: usize) -> Business {
    let owner = User {
        email: format!("{}@biz.example", name.to_lowercase()),
        business_name: Some(format!("{name} Ltd")),
        ..fixtures::owner(&format!("{name} Owner"))
    };
    let cs: Vec<Customer> = (0..customers)
        .map(|i| Customer {
            email: format!("c{i}@{}.example", name.to_lowercase()),
            phone: Some(format!("+44 20 7946 000{i}")),
            total_orders: i as i64,
            total_spent: 10.0 * i as f64,
            last_order_date: Some(Utc::now()),
            last_login: Some(Utc::now()),
            ..fixtures::customer(owner.id, &format!("{name} Customer {i}"))
        })
        .collect();
    fixtures::insert_business(store.as_ref(), &owner, &cs).await.expect("insert business");
    let owner_token = token(&Principal::User { id: owner.id, role: owner.role });
    let customer_tokens = cs.iter().map(|c| token(&Principal::Customer { id: c.id })).collect();
    Business { owner, owner_token, customers: cs, customer_tokens }
}

/// Opens (create-or-get) the conversation between the owner and customer `i`; returns its id.
pub async fn open(app: &TestApp, b: &Business, i: usize) -> String {
    let (status, body) = app
        .post(
            "/api/messages/conversations",
            &b.owner_token,
            serde_json::json!({"customerId": b.customers[i].id.to_hex()}),
        )
        .await;
    assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status} {body}");
    body["conversation"]["id"].as_str().expect("conversation id").to_owned()
}

/// Asserts the error shape and status.
/// Uploads `bytes` as `name` into a conversation over REST (multipart, as
/// browsers send it): the status and the JSON answer.
pub async fn upload_file(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    conv: &str,
    name: &str,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()));
    let r = http
        .post(format!("{base}/api/messages/conversations/{conv}/attachments"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = r.status();
    (status, r.json().await.expect("JSON"))
}

pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["code"].as_str().is_some_and(|c| !c.is_empty()), "{body}");
}

/// The sorted keys of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

/// Runs each listed async test function once per backend.
macro_rules! per_backend {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Sqlite).await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::common::Backend::Mongo).await;
                }
            )*
        }
    };
}

/// Starts `omnibiz gateway` as a child process; returns it and its base URL.
pub async fn gateway_process(db: &str, extra: &[(&str, &str)]) -> (tokio::process::Child, String) {
    omnibiz_process("gateway", db, extra).await
}

/// Starts `omnibiz <target>` (`api` or `gateway`) as a child process on a
/// MongoDB database and Redis; returns it and its base URL (from the banner).
pub async fn omnibiz_process(target: &str, db: &str, extra: &[(&str, &str)]) -> (tokio::process::Child, String) {
    let (child, base, _) = omnibiz_process_banner(target, db, extra).await;
    (child, base)
}

/// [`omnibiz_process`], also returning the banner's first line.
pub async fn omnibiz_process_banner(
    target: &str,
    db: &str,
    extra: &[(&str, &str)],
) -> (tokio::process::Child, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"));
    cmd.arg(target)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MONGODB_URI", mongo_uri())
        .env("MONGODB_DATABASE", db)
        .env("REDIS_URL", redis_url())
        .env("JWT_SECRET", SECRET)
        .env("LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in GENEROUS_RATES.iter().chain(extra) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {target}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    // Log lines (stdout too) may come before the banner.
    let banner = async {
        loop {
            let line = lines.next_line().await.expect("read").expect("the process printed its banner");
            if line.contains("listening on") {
                return line;
            }
        }
    };
    let banner = tokio::time::timeout(Duration::from_secs(20), banner).await.expect("banner");
    let base = banner.split_whitespace().find(|w| w.starts_with("http://")).expect("address in banner").to_owned();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base, banner)
}

/// Runs the seed front end's event flow (`tests/node/seed-flow.mjs`, the
/// official socket.io-client) against `base` in `mode` (`websocket`,
/// `polling` or `upgrade`); returns its JSON summary.
pub async fn seed_flow(base: &str, b: &Business, conv: &str, mode: &str) -> Value {
    let out = tokio::process::Command::new("node")
        .arg("seed-flow.mjs")
        .current_dir(node_dir("socket.io-client"))
        .env("BASE", base)
        .env("OWNER_TOKEN", &b.owner_token)
        .env("CUSTOMER_TOKEN", &b.customer_tokens[0])
        .env("CONV", conv)
        .env("MODE", mode)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{mode}: {stdout}{stderr}");
    serde_json::from_str(stdout.trim()).expect("summary JSON")
}

/// `MONGODB_URI` with the database `db` in its path (for clients that take
/// the database from the URI, like Mongoose).
pub fn mongo_uri_for(db: &str) -> String {
    let uri = mongo_uri();
    let (scheme, rest) = uri.split_once("://").expect("a mongodb:// URI");
    let (hosts, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = tail.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.is_empty() { format!("{scheme}://{hosts}/{db}") } else { format!("{scheme}://{hosts}/{db}?{query}") }
}

/// The `tests/node` folder, checking that `npm ci` has run there.
pub fn node_dir(package: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        dir.join("node_modules").join(package).exists(),
        "{package} is not installed: run scripts/test.sh (it runs `npm ci` in tests/node)"
    );
    dir
}

/// An API and a gateway, in-process, on a fresh MongoDB database and Redis.
pub async fn api_and_gateway(name: &str) -> (TestApp, TestApp) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_{name}_{}", bson::oid::ObjectId::new());
    let s = settings(Backend::Mongo, dir.path(), &db);
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    (api, gw)
}

/// Whether `base` answers `/readyz` 200 within 10 s (a process started
/// with [`omnibiz_process`] prints its banner before its store is ready).
pub async fn becomes_ready(base: &str) -> bool {
    eventually(100, Duration::from_millis(100), || async {
        reqwest::get(format!("{base}/readyz")).await.is_ok_and(|r| r.status() == 200)
    })
    .await
}

/// Checks `cond` up to `tries` times, `every` apart; true once it holds.
pub async fn eventually<F, Fut>(tries: usize, every: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if cond().await {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    false
}

/// Redis subscriber count of a channel.
pub async fn numsub(channel: &str) -> i64 {
    numsub_at(&redis_url(), channel).await
}

/// Subscribers of `channel` on the Redis at `url`.
pub async fn numsub_at(url: &str, channel: &str) -> i64 {
    use fred::interfaces::{ClientLike as _, PubsubInterface as _};
    let client = fred::prelude::Builder::from_config(fred::prelude::Config::from_url(url).expect("redis url"))
        .build()
        .expect("client");
    client.init().await.expect("connect redis");
    let v: Vec<(String, i64)> = client.pubsub_numsub(channel).await.expect("numsub");
    let _ = client.quit().await;
    v.first().map_or(0, |(_, n)| *n)
}

/// Starts one of the notification tests' Python helpers (`tests/push`,
/// `tests/mail`) with the Python that has their PyPI packages
/// (`OMNIBIZ_NOTIFY_PYTHON`, from `scripts/services.sh notify-tools`), and
/// returns it with the port it printed (`{"port": N}`) once listening.
pub async fn python_helper(script: &str, args: &[&std::ffi::OsStr]) -> (tokio::process::Child, u16) {
    let python = std::env::var("OMNIBIZ_NOTIFY_PYTHON").unwrap_or_else(|_| "python3".into());
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let mut child = tokio::process::Command::new(python)
        .arg(&path)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start {script} (OMNIBIZ_NOTIFY_PYTHON: a Python with its packages): {e}"));
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(child.stdout.take().expect("stdout")));
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{script} did not start within 30 s"))
        .expect("read")
        .expect("a line");
    let port = serde_json::from_str::<Value>(&first).expect("json")["port"].as_u64().expect("port");
    (child, u16::try_from(port).expect("port"))
}

pub mod cluster;
pub mod s3;
pub mod sio;
