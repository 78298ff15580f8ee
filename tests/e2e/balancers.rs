//! Real balancers — HAProxy and nginx, Debian's packages — in plain
//! round-robin without affinity in front of three gateway processes, run
//! with the configurations the docs ship (`docs/balancers/`):
//!
//! - the seed's flow with the official client on polling and on upgrade;
//! - the close-race stress: hundreds of official clients in bursts, a third
//!   refused for a garbage token, each closing at a random moment — the
//!   balancer's own access log shows no 4xx or 5xx, every acknowledged
//!   message is stored once and none twice;
//! - through HAProxy, the same stress in headless Chromium with a clean
//!   console;
//! - the gateway holding a polling client's session killed mid-stream:
//!   every message once, in order.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::common::cluster::free_port;
use crate::common::{
    Backend, becomes_ready, business, node_dir, omnibiz_process_banner, open, seed_flow, settings, spawn_with,
};
use crate::no_affinity::{Gateway, failover_through};
use omnibiz::app::Target;

#[derive(Clone, Copy, Debug)]
enum Kind {
    HaProxy,
    Nginx,
}

struct Balancer {
    _child: tokio::process::Child,
    base: String,
    /// HAProxy logs to its stdout (collected here); nginx to a file.
    lines: Arc<Mutex<Vec<String>>>,
    access_log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

fn docs(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/balancers").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl Balancer {
    async fn start(kind: Kind, gateways: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let hostport = |g: &str| g.trim_start_matches("http://").to_owned();
        let vars: Vec<(String, String)> = vec![
            ("GATEWAY_1".into(), hostport(gateways[0])),
            ("GATEWAY_2".into(), hostport(gateways[1])),
            ("GATEWAY_3".into(), hostport(gateways[2])),
        ];
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (mut child, access_log) = match kind {
            Kind::HaProxy => {
                let cfg = dir.path().join("haproxy.cfg");
                std::fs::write(&cfg, docs("haproxy.cfg")).expect("write config");
                let mut cmd = tokio::process::Command::new("haproxy");
                cmd.arg("-db").arg("-f").arg(&cfg).env("LB_BIND", &listen);
                for (k, v) in &vars {
                    cmd.env(k, v);
                }
                let child = cmd.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("haproxy (Debian's package)");
                (child, None)
            }
            Kind::Nginx => {
                // Started as root, nginx's workers run as `nobody`: they write request
                // bodies and proxy buffers under the run directory.
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
                }
                // envsubst, as the docs say, for the variables the file names.
                let mut text = docs("nginx.conf");
                let run = dir.path().to_string_lossy().into_owned();
                for (k, v) in vars.iter().chain([&("LB_LISTEN".into(), listen.clone()), &("RUN_DIR".into(), run)]) {
                    text = text.replace(&format!("${{{k}}}"), v);
                }
                let cfg = dir.path().join("nginx.conf");
                std::fs::write(&cfg, text).expect("write config");
                let child = tokio::process::Command::new("nginx")
                    .arg("-c")
                    .arg(&cfg)
                    .arg("-p")
                    .arg(dir.path())
                    .stdout(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()
                    .expect("nginx (Debian's package)");
                (child, Some(dir.path().join("access.log")))
            }
        };
        if let Some(out) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            tokio::spawn(async move {
                let mut r = BufReader::new(out).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    lines.lock().expect("lines").push(l);
                }
            });
        }
        let base = format!("http://{listen}");
        assert!(becomes_ready(&base).await, "{kind:?} answers on {base}");
        Self { _child: child, base, lines, access_log, _dir: dir }
    }

    /// The access log so far: `status method path …` per request.
    fn log(&self) -> Vec<String> {
        match &self.access_log {
            Some(p) => std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect(),
            None => self.lines.lock().expect("lines").clone(),
        }
    }

    /// Requests answered 400 or worse (the health checks' own are not
    /// logged). A request the client abandoned before its answer — the
    /// client closed its socket while a poll waited or an upgrade was under
    /// way — is the client's doing, not an answer anybody sent: nginx logs
    /// it 499, HAProxy with a termination state starting with `C`.
    fn failures(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| {
                let mut f = l.split_whitespace();
                let status = f.next().and_then(|s| s.parse::<u16>().ok());
                let client_gone = match self.access_log {
                    Some(_) => status == Some(499),
                    None => f.next().is_some_and(|t| t.starts_with('C')),
                };
                status.is_some_and(|s| s >= 400) && !client_gone
            })
            .collect()
    }
}

impl Drop for Balancer {
    /// nginx's workers outlive a master killed with SIGKILL (what
    /// `kill_on_drop` sends) and keep the port: ask the master to stop them.
    fn drop(&mut self) {
        if self.access_log.is_some()
            && let Some(pid) = self._child.id()
        {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            for _ in 0..50 {
                if matches!(self._child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

async fn node_json(script: &str, env: &[(&str, &str)]) -> Value {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(script).current_dir(node_dir("socket.io-client"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("finished").expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn behind(kind: Kind) {
    let tmp = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_lb_{}", bson::oid::ObjectId::new());
    let api = spawn_with(Backend::Mongo, settings(Backend::Mongo, tmp.path(), &db), Target::Api, tmp).await;
    let b = business(&api.store, "Balanced", 1).await;
    let conv = open(&api, &b, 0).await;
    let extra = [
        ("OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL", "1000"),
        ("OMNIBIZ_CONNECT_RATE", "100000"),
        ("OMNIBIZ_CONNECT_RATE_PER_IP", "100000"),
        ("OMNIBIZ_TRUSTED_PROXY_HOPS", "1"),
    ];
    let mut gateways: Vec<Gateway> = Vec::new();
    for _ in 0..3 {
        let (child, base, banner) = omnibiz_process_banner("gateway", &db, &extra).await;
        let node = banner.split("node: ").nth(1).and_then(|r| r.split(')').next()).expect("node in banner").to_owned();
        gateways.push((Some(child), base, node));
    }
    let bases: Vec<&str> = gateways.iter().map(|(_, b, _)| b.as_str()).collect();
    // A gateway prints its banner before its store is initialised and answers
    // `/readyz` 503 until then. Kubernetes keeps such a pod out of the
    // Service's endpoints; nginx has no health checks of its own, so here the
    // test waits for every gateway to be ready before the balancer sees it.
    for base in &bases {
        assert!(becomes_ready(base).await, "gateway {base} ready");
    }
    let lb = Balancer::start(kind, &bases).await;

    // The seed's flow, on polling only and with the upgrade.
    for mode in ["polling", "upgrade"] {
        assert_eq!(seed_flow(&lb.base, &b, &conv, mode).await["ok"], true, "{kind:?} {mode}");
    }

    // The close-race stress.
    let stress = node_json(
        "stress.mjs",
        &[("BASE", &lb.base), ("TOKEN", &b.customer_tokens[0]), ("CONV", &conv), ("N", "240"), ("BURST", "24")],
    )
    .await;
    println!(
        "{kind:?} stress: {}",
        serde_json::json!({
            "connected": stress["connected"], "refused": stress["refused"], "connectP50": stress["connectP50"],
            "connectMax": stress["connectMax"], "acked": stress["acked"].as_array().map(Vec::len),
        })
    );
    assert_eq!(stress["errors"], serde_json::json!([]), "{kind:?}: what clients saw");
    assert_eq!((stress["connected"].as_u64(), stress["refused"].as_u64()), (Some(160), Some(80)), "{stress}");
    let failures = lb.failures();
    assert!(failures.is_empty(), "{kind:?} answered {} requests with 4xx/5xx: {failures:?}", failures.len());
    // Every acknowledged send stored once; a send closed before its ack at most once.
    let (_, history) = api.get(&format!("/api/messages/conversations/{conv}?limit=100"), &b.owner_token).await;
    let mut stored = std::collections::HashMap::<String, usize>::new();
    let mut before = None;
    let mut page = history;
    loop {
        for m in page["messages"].as_array().expect("messages") {
            if let Some(c) = m["clientMessageId"].as_str() {
                *stored.entry(c.to_owned()).or_default() += 1;
            }
            before = m["seq"].as_i64().into_iter().chain(before).min();
        }
        if page["hasMore"] != true {
            break;
        }
        let at = before.expect("a seq");
        page = api.get(&format!("/api/messages/conversations/{conv}?limit=100&before={at}"), &b.owner_token).await.1;
    }
    for id in stress["acked"].as_array().expect("acked").iter().filter_map(Value::as_str) {
        assert_eq!(stored.get(id), Some(&1), "{kind:?}: acknowledged {id} stored once");
    }
    assert!(stored.values().all(|&n| n == 1), "{kind:?}: nothing stored twice");

    if matches!(kind, Kind::HaProxy) {
        let seen = node_json(
            "browser-stress.mjs",
            &[("SOCKET", &lb.base), ("TOKEN", &b.customer_tokens[0]), ("CONV", &conv), ("N", "60")],
        )
        .await;
        assert_eq!((seen["connected"].as_u64(), seen["refused"].as_u64()), (Some(40), Some(20)), "{seen}");
        assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
        println!(
            "{kind:?} in Chromium: {}",
            serde_json::json!({"connected": seen["connected"], "refused": seen["refused"], "closedByPage": seen["closedByPage"].as_array().map(Vec::len), "upgradeMs": seen["upgradeMs"]})
        );
        assert_eq!(seen["console"], serde_json::json!([]), "Chromium's console: {seen}");
        assert_eq!(seen["failedResponses"], serde_json::json!([]), "{seen}");
    }

    // A gateway killed mid-stream (a conversation of its own: the replay on join starts from its beginning).
    let quiet = business(&api.store, "Failover", 1).await;
    let quiet_conv = open(&api, &quiet, 0).await;
    failover_through(&lb.base, &api, &quiet, &quiet_conv, &mut gateways).await;
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_round_robin_without_affinity() {
    behind(Kind::HaProxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_round_robin_without_affinity() {
    behind(Kind::Nginx).await;
}
