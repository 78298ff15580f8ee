//! `TestCluster`: what Kubernetes runs, as real processes on this machine —
//! its own Redis and MongoDB-compatible server (on free ports, so the test
//! may kill and restart them without touching anyone else's), `api` and
//! `gateway` processes of the binary under test — with methods to SIGKILL
//! and restart any of them on the same port.

use std::path::PathBuf;
use std::time::Duration;

use super::SECRET;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// One process of the cluster, restartable with the same command.
pub struct Proc {
    pub name: String,
    pub port: u16,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl Proc {
    /// A process not started yet; `log` receives its output.
    pub fn new(name: &str, port: u16, program: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        Self { name: name.to_owned(), port, program, args, env: Vec::new(), log, child: None }
    }

    /// Starts it and waits (up to 30 s) until its port accepts connections.
    pub async fn start(&mut self) {
        self.spawn();
        for _ in 0..300 {
            if port_open(self.port).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} did not open port {} in 30 s:\n{}", self.name, self.port, self.log_tail());
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.name)));
    }

    /// SIGKILL: no drain, no goodbye.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

async fn http_ok(url: &str) -> bool {
    reqwest::get(url).await.is_ok_and(|r| r.status().is_success())
}

/// Redis, MongoDB, `api` and `gateway` processes on one machine.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub db: String,
    pub redis: Proc,
    pub mongo: Proc,
    pub apis: Vec<Proc>,
    pub gateways: Vec<Proc>,
}

impl TestCluster {
    /// Starts everything and waits until each process is ready. `extra` is
    /// environment for the `api` and `gateway` processes.
    pub async fn start(apis: usize, gateways: usize, extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = "omnibiz_cluster".to_owned();
        let secantus = std::env::var("OMNIBIZ_SECANTUS_BIN").map(PathBuf::from).unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/omnibiz-tools/bin/secantusd-rs")
        });
        assert!(secantus.exists(), "{} is missing: run scripts/test.sh (it builds it)", secantus.display());
        let rp = free_port();
        let redis = Proc {
            name: "redis".into(),
            port: rp,
            program: "redis-server".into(),
            args: ["--port", &rp.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .map(str::to_owned)
                .to_vec(),
            env: Vec::new(),
            log: dir.path().join("redis.log"),
            child: None,
        };
        let mp = free_port();
        let data = dir.path().join("mongo-data");
        std::fs::create_dir_all(&data).expect("mongo data dir");
        let mongo = Proc {
            name: "mongodb".into(),
            port: mp,
            program: secantus,
            args: vec![
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                mp.to_string(),
                "--storage-path".into(),
                data.display().to_string(),
                "--cache-size".into(),
                "256M".into(),
                "--log-level".into(),
                "WARNING".into(),
                // Honour `j: true` as mongod does (the test server fsyncs its log
                // lazily otherwise, and a SIGKILL loses acknowledged writes).
                "--sync-on-commit".into(),
            ],
            env: Vec::new(),
            log: dir.path().join("mongo.log"),
            child: None,
        };
        let mut c = Self { dir, db, redis, mongo, apis: Vec::new(), gateways: Vec::new() };
        c.start_redis().await;
        c.start_mongo().await;
        let mut env: Vec<(String, String)> = vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("MONGODB_URI".into(), c.mongo_uri()),
            ("MONGODB_DATABASE".into(), c.db.clone()),
            ("REDIS_URL".into(), format!("redis://127.0.0.1:{rp}")),
            ("JWT_SECRET".into(), SECRET.into()),
            ("LOG_LEVEL".into(), "warn".into()),
            ("OMNIBIZ_SHUTDOWN_GRACE_SECS".into(), "3".into()),
            ("OMNIBIZ_DRAIN_SECS".into(), "1".into()),
        ];
        env.extend(super::GENEROUS_RATES.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_omnibiz"));
        for (target, n) in [("api", apis), ("gateway", gateways)] {
            for i in 0..n {
                let port = free_port();
                let mut env = env.clone();
                env.push(("PORT".into(), port.to_string()));
                let p = Proc {
                    name: format!("{target}-{i}"),
                    port,
                    program: exe.clone(),
                    args: vec![target.into()],
                    env,
                    log: c.dir.path().join(format!("{target}-{i}.log")),
                    child: None,
                };
                if target == "api" { c.apis.push(p) } else { c.gateways.push(p) }
            }
        }
        for i in 0..c.apis.len() {
            c.start_api(i).await;
        }
        for i in 0..c.gateways.len() {
            c.start_gateway(i).await;
        }
        c
    }

    /// The cluster's own Redis.
    pub fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.redis.port)
    }

    pub fn mongo_uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.mongo.port)
    }

    pub async fn start_redis(&mut self) {
        self.redis.spawn();
        Self::wait(&self.redis, || port_open(self.redis.port)).await;
    }

    pub async fn start_mongo(&mut self) {
        self.mongo.spawn();
        Self::wait(&self.mongo, || port_open(self.mongo.port)).await;
    }

    pub async fn start_api(&mut self, i: usize) {
        self.apis[i].spawn();
        let url = format!("{}/readyz", self.apis[i].url());
        Self::wait(&self.apis[i], || http_ok(&url)).await;
    }

    pub async fn start_gateway(&mut self, i: usize) {
        self.gateways[i].spawn();
        let url = format!("{}/readyz", self.gateways[i].url());
        Self::wait(&self.gateways[i], || http_ok(&url)).await;
    }

    async fn wait<F, Fut>(p: &Proc, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..300 {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} did not become ready in 30 s:\n{}", p.name, p.log_tail());
    }

    /// A store on the cluster's database, for fixtures and checks.
    pub async fn store(&self) -> std::sync::Arc<dyn omnibiz_store::Store> {
        let m = omnibiz_store::mongo::MongoStore::connect(&self.mongo_uri(), Some(&self.db)).await.expect("mongo");
        std::sync::Arc::new(m)
    }

    pub fn api_urls(&self) -> Vec<String> {
        self.apis.iter().map(Proc::url).collect()
    }

    pub fn gateway_urls(&self) -> Vec<String> {
        self.gateways.iter().map(Proc::url).collect()
    }
}

/// Opens (create-or-get) the conversation of `owner_token`'s business with
/// `customer` through the REST API at `api`; returns its id.
pub async fn open_over_http(api: &str, owner_token: &str, customer: &str) -> String {
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/messages/conversations"))
        .bearer_auth(owner_token)
        .json(&serde_json::json!({"customerId": customer}))
        .send()
        .await
        .expect("open a conversation")
        .json()
        .await
        .expect("JSON");
    r["conversation"]["id"].as_str().expect("conversation id").to_owned()
}
