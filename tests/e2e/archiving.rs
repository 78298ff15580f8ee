//! Archiving, each side for itself: REST and socket doors, list filters and
//! counts, the other side untouched, and a new message bringing it back.

use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, spawn_with};

async fn archiving_per_side(backend: Backend) {
    // `serve` on either store: REST and sockets in one process.
    let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_archive_{}", bson::oid::ObjectId::new());
    let s = crate::common::settings(backend, dir.path(), &db);
    let app = spawn_with(backend, s, omnibiz::app::Target::Serve, dir).await;
    let b = business(&app.store, "Archive", 2).await;
    let (c0, c1) = (open(&app, &b, 0).await, open(&app, &b, 1).await);
    let list = |tok: String, filter: &'static str| {
        let app = &app;
        async move {
            let (s, v) = app.get(&format!("/api/messages/conversations?filter={filter}"), &tok).await;
            assert_eq!(s, 200, "{v}");
            v
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["conversations"].as_array().expect("list").iter().map(|c| c["id"].as_str().expect("id").to_owned()).collect()
    };

    let (s, v) = app.post(&format!("/api/messages/conversations/{c0}/archive"), &b.owner_token, json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["archived"], true);
    let archived = list(b.owner_token.clone(), "archived").await;
    assert_eq!(ids(&archived), vec![c0.clone()]);
    assert_eq!(
        archived["counts"],
        json!({"active": 1, "archived": 1, "all": 2, "assigned": {"mine": 0, "unassigned": 1, "all": 1}}),
        "the business's counts also say who has the open ones"
    );
    assert_eq!(ids(&list(b.owner_token.clone(), "active").await), vec![c1.clone()]);
    assert_eq!(ids(&list(b.owner_token.clone(), "all").await).len(), 2);
    let theirs = list(b.customer_tokens[0].clone(), "all").await;
    assert_eq!(theirs["conversations"][0]["archived"], false, "the customer's view is untouched");
    let (s, v) = app.get("/api/messages/conversations?filter=nope", &b.owner_token).await;
    assert_eq!(s, 400, "{v}");

    // The customer writes: it comes back for the owner, whose socket hears the new message.
    let (s, _) = app.send(&b.customer_tokens[0], &c0, "one more question").await;
    assert_eq!(s, 201);
    assert!(ids(&list(b.owner_token.clone(), "archived").await).is_empty(), "a new message brings it back");

    // Over the socket: the customer archives for themselves; only their sockets hear it.
    let mut cust = SioClient::connect(&app.base, Some(&b.customer_tokens[0])).await.expect("customer");
    let mut owner = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("owner");
    let ack = cust.call("archive_conversation", json!({"conversationId": c0})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["conversation"]["archived"], true);
    let heard = cust.expect("conversation_updated").await;
    assert_eq!(heard["archived"], true, "{heard}");
    assert!(
        owner.try_expect("conversation_updated", std::time::Duration::from_millis(700)).await.is_none(),
        "the owner's view did not change"
    );
    assert_eq!(ids(&list(b.customer_tokens[0].clone(), "archived").await), vec![c0.clone()]);
    let ack = cust.call("unarchive_conversation", json!({"conversationId": c0})).await;
    assert_eq!(ack["conversation"]["archived"], false, "{ack}");
    // Someone else's conversation: 404 / NOT_FOUND.
    let ack = cust.call("archive_conversation", json!({"conversationId": c1})).await;
    assert_eq!(ack["code"], "NOT_FOUND", "{ack}");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_per_side_on_sqlite() {
    archiving_per_side(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_per_side_on_mongodb() {
    archiving_per_side(Backend::Mongo).await;
}
