//! A real Prometheus (Debian's package) scraping an `api` and two gateway
//! processes, with the shipped alerting rules loaded: after the seed's flow,
//! every query of the Grafana dashboard returns data (an explicit 0 where
//! nothing happened), every rule evaluates without error, and an alert
//! follows reality (a gateway killed: `OmniBizPodDown` turns pending for it
//! and only for it).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::cluster::free_port;
use crate::common::{Backend, business, eventually, omnibiz_process, open, seed_flow, settings, spawn_with};
use omnibiz::app::Target;

fn dashboard_queries() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dash = std::fs::read_to_string(root.join("k8s/base/dashboards/omnibiz.json")).expect("dashboard");
    let dash: Value = serde_json::from_str(&dash).expect("dashboard JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((p["title"].as_str().unwrap_or("?").to_owned(), t["expr"].as_str().expect("expr").to_owned()));
        }
    }
    out
}

async fn query(http: &reqwest::Client, prom: &str, path: &str, q: &[(&str, &str)]) -> Value {
    // Null until Prometheus listens.
    match http.get(format!("{prom}{path}")).query(q).send().await {
        Ok(r) => r.json().await.expect("json"),
        Err(_) => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_pod_and_the_dashboard_and_alerts_work() {
    let tmp = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_prom_{}", bson::oid::ObjectId::new());
    // The REST side in-process for the fixtures; the scraped pods are processes of their own.
    let setup = spawn_with(Backend::Mongo, settings(Backend::Mongo, tmp.path(), &db), Target::Api, tmp.clone()).await;
    let b = business(&setup.store, "Observed", 1).await;
    let conv = open(&setup, &b, 0).await;
    let (_api, api) = omnibiz_process("api", &db, &[]).await;
    let (_g1, g1) = omnibiz_process("gateway", &db, &[]).await;
    let (mut g2_child, g2) = omnibiz_process("gateway", &db, &[]).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("omnibiz-rules.yaml");
    let extracted =
        std::process::Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/prometheus-rules.sh"))
            .arg("--extract")
            .arg(&rules)
            .status()
            .expect("scripts/prometheus-rules.sh");
    assert!(extracted.success());
    let host = |u: &str| u.trim_start_matches("http://").to_owned();
    // Job names are the Services' (as the ServiceMonitor names them); `pod` as Kubernetes labels it.
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: ['{}']\nscrape_configs:\n\
         - job_name: omnibiz-api\n  static_configs: [{{targets: ['{}']}}]\n  relabel_configs: [{{source_labels: [__address__], target_label: pod}}]\n\
         - job_name: omnibiz-gateway\n  static_configs: [{{targets: ['{}', '{}']}}]\n  relabel_configs: [{{source_labels: [__address__], target_label: pod}}]\n",
        rules.display(),
        host(&api),
        host(&g1),
        host(&g2),
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let port = free_port();
    let prom = format!("http://127.0.0.1:{port}");
    let _prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus (Debian's package)");
    let http = reqwest::Client::new();
    let up = eventually(150, Duration::from_millis(200), || async {
        let v = query(&http, &prom, "/api/v1/query", &[("query", "sum(up)")]).await;
        v["data"]["result"][0]["value"][1] == "3"
    })
    .await;
    assert!(up, "Prometheus scrapes the api and both gateways");

    // Traffic: the seed's flow on each gateway, and REST through the api process.
    for gw in [&g1, &g2] {
        assert_eq!(seed_flow(gw, &b, &conv, "websocket").await["ok"], true);
    }
    let r = http
        .post(format!("{api}/api/messages/send"))
        .bearer_auth(&b.owner_token)
        .json(&serde_json::json!({"conversationId": conv, "content": "observed"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    // Rates need two samples after the traffic.
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut empty = Vec::new();
    for (title, expr) in dashboard_queries() {
        let v = query(&http, &prom, "/api/v1/query", &[("query", &expr)]).await;
        assert_eq!(v["status"], "success", "{title}: {expr}: {v}");
        if v["data"]["result"].as_array().is_none_or(Vec::is_empty) {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(empty.is_empty(), "dashboard queries without data: {empty:#?}");

    // Every rule loaded and evaluated cleanly.
    let ok = eventually(50, Duration::from_millis(200), || async {
        let v = query(&http, &prom, "/api/v1/rules", &[]).await;
        let rules: Vec<&Value> = v["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        rules.len() == 15 && rules.iter().all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
    })
    .await;
    let v = query(&http, &prom, "/api/v1/rules", &[]).await;
    assert!(ok, "every rule evaluated without error: {v}");
    let firing = query(&http, &prom, "/api/v1/alerts", &[]).await;
    assert_eq!(firing["data"]["alerts"], serde_json::json!([]), "a healthy system raises nothing");

    // A gateway dies: its pod's alert goes pending, the others stay quiet.
    g2_child.kill().await.expect("kill");
    let pending = eventually(50, Duration::from_millis(200), || async {
        let v = query(&http, &prom, "/api/v1/alerts", &[]).await;
        v["data"]["alerts"].as_array().is_some_and(|a| {
            a.len() == 1 && a[0]["labels"]["alertname"] == "OmniBizPodDown" && a[0]["labels"]["instance"] == host(&g2)
        })
    })
    .await;
    let v = query(&http, &prom, "/api/v1/alerts", &[]).await;
    assert!(pending, "OmniBizPodDown for the dead gateway only: {v}");
    setup.finish().await;
}
