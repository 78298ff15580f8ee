//! The official Node `socket.io-client` 4.x against `omnibiz serve` (one
//! process, in-process bus): websocket, polling, and polling with upgrade.
//! `scripts/test.sh` installs the client from npm into `tests/node`.

use crate::common::{Backend, business, open, seed_flow, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_seed_flow_over_every_transport() {
    let app = spawn_app(Backend::Sqlite).await;
    let b = business(&app.store, "Node", 1).await;
    let conv = open(&app, &b, 0).await;
    for mode in ["websocket", "polling", "upgrade"] {
        let summary = seed_flow(&app.base, &b, &conv, mode).await;
        assert_eq!(summary["ok"], true);
        let expected = if mode == "polling" { "polling" } else { "websocket" };
        assert_eq!(summary["transport"], expected, "{mode} ended on the expected transport");
    }
    // Everything the clients sent was stored once.
    let (_, page) = app.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    let contents: Vec<&str> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, vec!["hello over websocket", "hello over polling", "hello over upgrade"]);
    app.finish().await;
}
