//! The web console, as a newcomer meets it: `omnibiz seed` then `omnibiz
//! serve` as real processes on the embedded default, and the seed's ten-item
//! "Manual Testing Checklist" run in headless Chromium (Debian's package)
//! by playwright-core (`tests/node/console.mjs`): an owner, a customer with a
//! conversation and one without, chatting through the console, including a
//! network drop and the REST fallback. Screenshots land in
//! `target/console-screens/` (`OMNIBIZ_UPDATE_SCREENSHOTS=1` writes the
//! README's, under `docs/`).

use std::time::Duration;

use crate::common::{node_dir, omnibiz_process};
use serde_json::Value;

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: run scripts/test.sh (it installs chromium)");
    path
}

const SECRET: &str = "console-test-secret-console-test-secret";

fn omnibiz(data: &std::path::Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"));
    cmd.env("DATA_DIR", data)
        .env("JWT_SECRET", SECRET)
        .env("HOST", "127.0.0.1")
        .env("LOG_LEVEL", "warn")
        .env_remove("MONGODB_URI")
        .env_remove("REDIS_URL")
        .kill_on_drop(true);
    // The checklist sets up history over the API faster than a person sends
    // (80 messages at once): the limits have their own tests.
    cmd.envs(crate::common::GENEROUS_RATES.iter().copied());
    cmd
}

/// `omnibiz serve` as a process; its banner and base URL.
async fn serve(data: &std::path::Path) -> (tokio::process::Child, String, String) {
    let mut child =
        omnibiz(data).arg("serve").env("PORT", "0").stdout(std::process::Stdio::piped()).spawn().expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut banner = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read") {
            banner += &line;
            banner.push('\n');
            if line.contains("Console") || line.contains("REST API") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("serve printed its banner");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = banner
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL in the banner")
        .trim_end_matches('/')
        .to_owned();
    (child, base, banner)
}

#[tokio::test]
async fn the_seed_checklist_passes_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens.json");
    let seeded = omnibiz(dir.path())
        .args(["seed", "--owners", "2", "--customers-per-owner", "5", "--fresh-customers", "2", "--tokens-out"])
        .arg(&tokens)
        .output()
        .await
        .expect("run seed");
    let printed = String::from_utf8_lossy(&seeded.stdout);
    assert!(seeded.status.success(), "seed: {printed}{}", String::from_utf8_lossy(&seeded.stderr));
    assert!(printed.contains("/#token=ey"), "seed prints one-click console links: {printed}");
    assert!(printed.contains("(no conversation yet)"), "{printed}");
    let out: Value = serde_json::from_slice(&std::fs::read(&tokens).expect("tokens")).expect("json");
    let owner = &out["owners"][0];
    let customers = owner["customers"].as_array().expect("customers");
    assert!(customers[2]["conversationId"].is_string() && customers[3]["conversationId"].is_null(), "{out}");
    let s = |v: &Value| v.as_str().expect("string").to_owned();

    let (_server, base, banner) = serve(dir.path()).await;
    assert!(banner.contains(&format!("Console    {base}/")), "the banner names the console: {banner}");

    let shots = std::env::var("OMNIBIZ_UPDATE_SCREENSHOTS").map_or_else(
        |_| std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screens"),
        |_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs"),
    );
    let run = tokio::process::Command::new("node")
        .arg("console.mjs")
        .current_dir(node_dir("playwright-core"))
        .env("CHROMIUM", chromium())
        .env("BASE", &base)
        .env("OWNER_TOKEN", s(&owner["token"]))
        .env("CUSTOMER_TOKEN", s(&customers[0]["token"]))
        .env("CUSTOMER_NAME", s(&customers[0]["name"]))
        .env("STARTED_TOKEN", s(&customers[3]["token"]))
        .env("STARTED_NAME", s(&customers[3]["name"]))
        .env("FRESH_TOKEN", s(&customers[4]["token"]))
        .env("FRESH_NAME", s(&customers[4]["name"]))
        // The second owner's account joins the first's team as an agent.
        .env("AGENT_TOKEN", s(&out["owners"][1]["token"]))
        .env("AGENT_ID", s(&out["owners"][1]["id"]))
        .env("AGENT_NAME", s(&out["owners"][1]["name"]))
        .env("SHOTS", &shots)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(240), run).await.expect("console.mjs finished").expect("node");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&run.stderr)));
    println!("console checklist: {}", serde_json::to_string_pretty(&result).unwrap_or_default());
    assert!(run.status.success() && result["ok"] == true, "console.mjs failed: {result:#}");
    let items = result["items"].as_object().expect("items");
    for n in 1..=10 {
        let (name, r) = items
            .iter()
            .find(|(k, _)| k.starts_with(&format!("{n}. ")))
            .unwrap_or_else(|| panic!("checklist item {n} missing: {result}"));
        assert_eq!(r["ok"], true, "{name}: {r}");
    }
    for name in [
        "beyond the seed: attachments, edit, delete",
        "beyond the seed: reactions and archiving",
        "beyond the seed: voice messages",
    ] {
        assert_eq!(items.get(name).map(|r| &r["ok"]), Some(&Value::Bool(true)), "{name}: {result}");
    }
    for shot in ["console-owner.png", "console-customer.png", "console-owner-phone.png"] {
        let len = std::fs::metadata(shots.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{shot} written ({len} bytes)");
    }
}

#[tokio::test]
async fn the_console_is_served_safely_and_only_where_enabled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, base, _) = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{base}/")).send().await.expect("GET /");
    assert_eq!(page.status(), 200);
    let h = page.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let html = page.text().await.expect("body");
    assert!(html.contains("/console/app.js") && !html.contains("{{SOCKET_URL}}"), "{html}");
    for asset in [
        "/console/app.js",
        "/console/js/session.js",
        "/console/js/chat.js",
        "/console/app.css",
        "/console/vendor/socket.io.esm.min.js",
    ] {
        let r = http.get(format!("{base}{asset}")).send().await.expect("asset");
        assert_eq!(r.status(), 200, "{asset}");
        let etag = r.headers()["etag"].clone();
        let again = http.get(format!("{base}{asset}")).header("if-none-match", etag).send().await.expect("revalidate");
        assert_eq!(again.status(), 304, "{asset} revalidates");
    }
    assert_eq!(http.get(format!("{base}/console/..%2fCargo.toml")).send().await.expect("get").status(), 404);
    assert_eq!(http.get(format!("{base}/console/nope.js")).send().await.expect("get").status(), 404);

    // Pods: off unless enabled; with a socket URL, the page points there and CSP allows it.
    let db = format!("omnibiz_console_{}", bson::oid::ObjectId::new());
    let (_api, api_base) = omnibiz_process("api", &db, &[]).await;
    assert_eq!(http.get(format!("{api_base}/")).send().await.expect("get").status(), 404, "off in pods by default");
    let (_gw, gw_base) = omnibiz_process(
        "gateway",
        &db,
        &[("OMNIBIZ_CONSOLE", "true"), ("OMNIBIZ_CONSOLE_SOCKET_URL", "https://chat.example.com")],
    )
    .await;
    let r = http.get(format!("{gw_base}/")).send().await.expect("get");
    assert_eq!(r.status(), 200, "on when enabled");
    let csp = r.headers()["content-security-policy"].to_str().expect("csp").to_owned();
    assert!(csp.contains("wss://chat.example.com"), "{csp}");
    assert!(r.text().await.expect("body").contains(r#"content="https://chat.example.com""#));
}
