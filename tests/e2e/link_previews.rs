//! Link previews against a local HTTP server with OpenGraph tags: the card
//! follows the message as a `message_updated`, its image is stored with the
//! conversation's files (readers never contact the site), and private
//! targets are not fetched without the setting that allows them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::common::sio::SioClient;
use crate::common::{Backend, business, open, settings, spawn_with};

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0xda, 0x63, 0xfc, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x05, 0x02, 0x00, 0x5f, 0xc8, 0xf1,
    0xd2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A shop page (behind a redirect, as product links often are) and its image; counts requests.
async fn shop() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let (h1, h2, h3) = (Arc::clone(&hits), Arc::clone(&hits), Arc::clone(&hits));
    let app = axum::Router::new()
        .route(
            "/p/42",
            get(move || async move {
                h1.fetch_add(1, Ordering::SeqCst);
                (axum::http::StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/products/blue-mug")])
            }),
        )
        .route(
            "/products/blue-mug",
            get(move || async move {
                h2.fetch_add(1, Ordering::SeqCst);
                let html = r#"<!doctype html><html><head><title>Shop</title>
                    <meta property="og:title" content="Blue Mug">
                    <meta property="og:description" content="Hand-made stoneware, 350 ml">
                    <meta property="og:site_name" content="Pottery Shop">
                    <meta property="og:image" content="/img/mug.png"></head><body>…</body></html>"#;
                ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
            }),
        )
        .route(
            "/img/mug.png",
            get(move || async move {
                h3.fetch_add(1, Ordering::SeqCst);
                ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("shop") });
    (base, hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_gets_a_card_with_a_stored_image_and_private_targets_need_the_setting() {
    let (shop, hits) = shop().await;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "previews");
    s.webhook_allow_private = true; // the shop is on 127.0.0.1
    let app = spawn_with(Backend::Sqlite, s, omnibiz::app::Target::Serve, dir).await;
    let b = business(&app.store, "Previews", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut owner = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("owner");
    assert_eq!(owner.call("join_conversation", json!(conv)).await["ok"], true);

    let (status, sent) = app.send(&b.customer_tokens[0], &conv, &format!("Is this in stock? {shop}/p/42")).await;
    assert_eq!(status, 201);
    assert!(sent["message"].get("linkPreview").is_none(), "the send does not wait for the card");
    let updated = owner.try_expect("message_updated", Duration::from_secs(10)).await.expect("the card arrives");
    let card = &updated["linkPreview"];
    assert_eq!(card["title"], "Blue Mug", "{updated}");
    assert_eq!(card["description"], "Hand-made stoneware, 350 ml");
    assert_eq!(card["siteName"], "Pottery Shop");
    assert_eq!(card["url"], format!("{shop}/p/42").as_str());
    let image = card["imageId"].as_str().expect("the image is stored here");
    // Readers get the image from us, the other participant included.
    let (s, links) = app.get(&format!("/api/messages/attachments/{image}"), &b.owner_token).await;
    assert_eq!(s, 200, "{links}");
    let (_, page) = app.get(&format!("/api/messages/conversations/{conv}"), &b.owner_token).await;
    assert_eq!(page["messages"][0]["linkPreview"]["title"], "Blue Mug", "kept with the message");
    assert_eq!(hits.load(Ordering::SeqCst), 3, "redirect, page, image: once each");
    app.finish().await;

    // Without the setting, a private target is not even asked.
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let app = spawn_with(
        Backend::Sqlite,
        settings(Backend::Sqlite, dir.path(), "previews2"),
        omnibiz::app::Target::Serve,
        dir,
    )
    .await;
    let b = business(&app.store, "Guarded", 1).await;
    let conv = open(&app, &b, 0).await;
    let mut owner = SioClient::connect(&app.base, Some(&b.owner_token)).await.expect("owner");
    assert_eq!(owner.call("join_conversation", json!(conv)).await["ok"], true);
    let before = hits.load(Ordering::SeqCst);
    app.send(&b.customer_tokens[0], &conv, &format!("{shop}/products/blue-mug")).await;
    assert!(owner.try_expect("message_updated", Duration::from_secs(2)).await.is_none(), "no card");
    assert_eq!(hits.load(Ordering::SeqCst), before, "the private address was never contacted");
    app.finish().await;
}
