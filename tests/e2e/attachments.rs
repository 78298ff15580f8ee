//! Attachments against a real S3-protocol server (moto's, started by the
//! test on a free port) and against local disk; hostile files; the deny
//! matrix of every new endpoint; the sweeper; edit and delete, with their
//! events across two gateway processes.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use crate::common::cluster::TestCluster;
use crate::common::s3::S3Server;
use crate::common::sio::SioClient;
use crate::common::{Backend, Business, TestApp, assert_error, business, open, settings, spawn_with};
use omnibiz::app::Target;
use omnibiz_domain::UploadId;
use omnibiz_service::files::{Files, FilesConfig, S3Location};
use omnibiz_service::jobs::sweeper;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
    out.into_inner()
}

async fn upload_raw(app: &TestApp, token: &str, conv: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    crate::common::upload_file(&app.http, &app.url(""), token, conv, name, &bytes).await
}

async fn upload(app: &TestApp, token: &str, conv: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload_raw(app, token, conv, name, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["attachment"].clone()
}

async fn send_with(
    app: &TestApp,
    token: &str,
    conv: &str,
    attachments: Value,
    cmid: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({"conversationId": conv, "content": "see attached", "attachments": attachments});
    if let Some(c) = cmid {
        body["clientMessageId"] = json!(c);
    }
    app.post("/api/messages/send", token, body).await
}

async fn fetch(app: &TestApp, path_or_url: &str, token: Option<&str>) -> reqwest::Response {
    let url = if path_or_url.starts_with("http") { path_or_url.to_owned() } else { app.url(path_or_url) };
    let mut req = app.http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("download")
}

/// The whole life of an attachment, on MongoDB and S3: upload, attach,
/// download (token and signed link), thumbnail, deny matrix, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_live_in_s3_and_only_participants_reach_them() {
    let s3 = S3Server::start("omnibiz-files").await;
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_files_{}", bson::oid::ObjectId::new());
    let mut s = settings(Backend::Mongo, dir.path(), &db);
    s3.apply(&mut s);
    let app = spawn_with(Backend::Mongo, s, Target::Api, dir).await;
    let a = business(&app.store, "Acme", 2).await;
    let b = business(&app.store, "Other", 1).await;
    let conv = open(&app, &a, 0).await;
    let other_conv = open(&app, &b, 0).await;
    let customer = &a.customer_tokens[0];

    // Upload: 201, the type from the bytes, the name without its path.
    let image = png(800, 400);
    let att = upload(&app, customer, &conv, "../../etc/holiday.png", image.clone()).await;
    let id = att["id"].as_str().expect("id").to_owned();
    assert_eq!(att["type"], "image/png");
    assert_eq!(att["name"], "holiday.png");
    assert_eq!(att["size"], image.len());
    assert_eq!(att["url"], format!("/api/messages/attachments/{id}/content"));
    assert_eq!(att["thumbnailUrl"], format!("/api/messages/attachments/{id}/thumbnail"));
    // It is in the bucket, byte for byte, with its thumbnail.
    assert_eq!(s3.object(&format!("uploads/{id}")).await.as_deref(), Some(image.as_slice()));
    assert!(s3.keys().await.contains(&format!("uploads/{id}.thumb.jpg")));

    // Attach it: the message carries the seed's {url, type, name, size} and the id.
    let (status, sent) = send_with(&app, customer, &conv, json!([{"id": id}]), Some("with-file-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let m = &sent["message"];
    assert_eq!(m["attachments"][0]["id"], id.as_str());
    assert_eq!(m["attachments"][0]["type"], "image/png");
    assert_eq!(m["attachments"][0]["size"], image.len());
    // A retry with the same clientMessageId is the same message; a new send cannot take the file.
    let (status, again) = send_with(&app, customer, &conv, json!([{"id": id}]), Some("with-file-1")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["message"]["id"], m["id"]);
    let (status, body) = send_with(&app, customer, &conv, json!([{"id": id}]), Some("with-file-2")).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // The owner cannot attach the customer's upload either.
    let (status, body) = send_with(&app, &a.owner_token, &conv, json!([{"id": id}]), None).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);

    // Download with a participant's token: the bytes, a safe set of headers.
    for token in [customer.as_str(), a.owner_token.as_str()] {
        let r = fetch(&app, &format!("/api/messages/attachments/{id}/content"), Some(token)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "image/png");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "default-src 'none'; sandbox");
        assert!(h["content-disposition"].to_str().expect("ascii").starts_with("inline; filename=\"holiday.png\""));
        assert_eq!(r.bytes().await.expect("body").as_ref(), image.as_slice());
    }
    // Signed links: no token needed, bound to the file and its variant, and they expire.
    let (status, links) = app.get(&format!("/api/messages/attachments/{id}"), &a.owner_token).await;
    assert_eq!(status, StatusCode::OK, "{links}");
    let url = links["url"].as_str().expect("url").to_owned();
    let r = fetch(&app, &url, None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), image.as_slice());
    let thumb = fetch(&app, links["thumbnailUrl"].as_str().expect("thumbnail link"), None).await;
    assert_eq!(thumb.status(), StatusCode::OK);
    assert_eq!(thumb.headers()["content-type"], "image/jpeg");
    let t = image::load_from_memory(&thumb.bytes().await.expect("thumb")).expect("a JPEG");
    assert_eq!((t.width(), t.height()), (320, 160));
    let forged = url.replace("/content?", "/thumbnail?");
    assert_eq!(fetch(&app, &forged, None).await.status(), StatusCode::UNAUTHORIZED);
    // Change the signature's last hex digit (to another one: a `0` stays a `0` otherwise, 1 run in 16).
    let last = if url.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &url[..url.len() - 1]);
    assert_eq!(fetch(&app, &tampered, None).await.status(), StatusCode::UNAUTHORIZED);
    let expired = format!("/api/messages/attachments/{id}/content?expires=1&sig={}", "0".repeat(64));
    assert_eq!(fetch(&app, &expired, None).await.status(), StatusCode::UNAUTHORIZED);

    // The deny matrix: no token → 401; another tenant (owner or customer) → 404, as if it did not exist.
    assert_eq!(
        fetch(&app, &format!("/api/messages/attachments/{id}/content"), None).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = app.call(reqwest::Method::GET, &format!("/api/messages/attachments/{id}"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    for outsider in [&b.owner_token, &b.customer_tokens[0], &a.customer_tokens[1]] {
        let (status, body) = app.get(&format!("/api/messages/attachments/{id}"), outsider).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        for variant in ["content", "thumbnail"] {
            let r = fetch(&app, &format!("/api/messages/attachments/{id}/{variant}"), Some(outsider)).await;
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{variant}");
        }
        let (status, body) = upload_raw(&app, outsider, &conv, "x.png", png(4, 4)).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = upload_raw(&app, customer, &other_conv, "x.png", png(4, 4)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);

    // Hostile files: refused with the right status, nothing left in the bucket.
    let before = s3.keys().await;
    let html = b"<!doctype html><script>alert(document.cookie)</script>".to_vec();
    let (status, body) = upload_raw(&app, customer, &conv, "cat.png", html).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.resize(4096, 0);
    let (status, body) = upload_raw(&app, customer, &conv, "invoice.pdf", elf).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = upload_raw(&app, customer, &conv, "empty.png", Vec::new()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // A PNG that decodes to more pixels than allowed (a decompression bomb): tiny on the wire.
    let bomb = png(13_000, 2);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let (status, body) = upload_raw(&app, customer, &conv, "bomb.png", bomb).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // A truncated image: right magic, broken body.
    let mut broken = png(64, 64);
    broken.truncate(100);
    let (status, body) = upload_raw(&app, customer, &conv, "broken.png", broken).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // Over the size limit (10 MiB by default): cut off while streaming.
    let mut big = png(8, 8);
    big.resize(11 * 1024 * 1024, 7);
    let (status, body) = upload_raw(&app, customer, &conv, "big.png", big).await;
    assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    // Not multipart at all.
    let (status, body) =
        app.post(&format!("/api/messages/conversations/{conv}/attachments"), customer, json!({"file": "x"})).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(s3.keys().await, before, "a refused upload left objects behind");

    // A name built to break the download header stays one header.
    let pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n".to_vec();
    let doc = upload(&app, customer, &conv, "a\"; filename=evil.html; x=\\1.pdf", pdf.clone()).await;
    let doc_id = doc["id"].as_str().expect("id").to_owned();
    assert_eq!(doc["type"], "application/pdf");
    assert!(doc.get("thumbnailUrl").is_none());
    let r = fetch(&app, &format!("/api/messages/attachments/{doc_id}/content"), Some(customer)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers().get_all("content-disposition").iter().count(), 1);
    let disposition = r.headers()["content-disposition"].to_str().expect("ascii").to_owned();
    // One quoted name (no quote or backslash inside it), then the RFC 8187 form.
    let quoted = disposition.strip_prefix("attachment; filename=\"").expect("an attachment, never inline");
    let (name, rest) = quoted.split_once('"').expect("closing quote");
    assert!(!name.contains('\\'), "{disposition}");
    assert!(rest.starts_with("; filename*=UTF-8''") && !rest.contains('"'), "{disposition}");
    let r = fetch(&app, &format!("/api/messages/attachments/{doc_id}/thumbnail"), Some(customer)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Delete the message: its file leaves the bucket, history keeps the mark.
    let mid = m["id"].as_str().expect("message id");
    let (status, body) = app.call(reqwest::Method::DELETE, &format!("/api/messages/{mid}"), Some(customer), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["isDeleted"], true);
    assert_eq!(body["message"]["content"], "");
    let keys = s3.keys().await;
    assert!(!keys.iter().any(|k| k.starts_with(&format!("uploads/{id}"))), "{keys:?}");
    let r = fetch(&app, &format!("/api/messages/attachments/{id}/content"), Some(customer)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, history) = app.get(&format!("/api/messages/conversations/{conv}"), &a.owner_token).await;
    let gone = history["messages"].as_array().expect("messages").iter().find(|x| x["id"] == mid).expect("listed");
    assert_eq!(gone["isDeleted"], true);
    assert_eq!(gone["attachments"], json!([]));

    // The sweeper: an upload never attached goes; one whose message exists but
    // was never confirmed (a crash between the two) is confirmed and stays.
    let orphan = upload(&app, customer, &conv, "orphan.png", png(10, 10)).await;
    let orphan_id: UploadId = orphan["id"].as_str().expect("id").parse().expect("upload id");
    let kept = upload(&app, customer, &conv, "kept.png", png(10, 10)).await;
    let kept_id: UploadId = kept["id"].as_str().expect("id").parse().expect("upload id");
    let (status, body) = send_with(&app, customer, &conv, json!([{"id": kept["id"]}]), None).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let doc_upload: UploadId = doc_id.parse().expect("upload id");
    app.store.unconfirm_uploads(&[kept_id, doc_upload]).await.expect("unconfirm");
    let at = S3Location {
        bucket: s3.bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(s3.endpoint()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    };
    let config = FilesConfig { orphan_after: Duration::ZERO, ..FilesConfig::default() };
    let files = Files::s3(&at, b"sweeper-test", config).expect("files");
    let swept = sweeper::sweep_once(app.store.as_ref(), &files).await.expect("sweep");
    assert_eq!(
        swept,
        sweeper::Swept { confirmed: 1, deleted: 2 },
        "the orphan and the never-sent PDF go; the sent one stays"
    );
    assert!(!s3.keys().await.contains(&format!("uploads/{orphan_id}")));
    assert!(app.store.get_upload(orphan_id).await.expect("read").is_none());
    assert!(s3.keys().await.contains(&format!("uploads/{kept_id}")));
    assert!(app.store.get_upload(kept_id).await.expect("read").is_some_and(|u| u.confirmed));
    app.finish().await;
}

/// `serve` keeps files on local disk under the data dir; same contract.
#[tokio::test]
async fn serve_keeps_files_on_local_disk() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "unused");
    s.edit_window_secs = 2;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, Arc::clone(&dir)).await;
    let a = business(&app.store, "Local", 1).await;
    let conv = open(&app, &a, 0).await;
    let image = png(40, 30);
    let att = upload(&app, &a.owner_token, &conv, "shop.png", image.clone()).await;
    let id = att["id"].as_str().expect("id").to_owned();
    let on_disk = dir.path().join("files").join("uploads").join(&id);
    assert_eq!(std::fs::read(&on_disk).expect("file on disk"), image);
    // Not sent yet: the uploader's own, not the other side's (404, as for any id they cannot see).
    for path in [format!("/api/messages/attachments/{id}"), format!("/api/messages/attachments/{id}/content")] {
        let r = fetch(&app, &path, Some(&a.customer_tokens[0])).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path} before the message went out");
        assert_eq!(fetch(&app, &path, Some(&a.owner_token)).await.status(), StatusCode::OK, "{path}: the uploader's");
    }
    let (status, sent) = send_with(&app, &a.owner_token, &conv, json!([{"id": id}]), None).await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let r = fetch(&app, &format!("/api/messages/attachments/{id}/content"), Some(&a.customer_tokens[0])).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), image.as_slice());

    // Edit: only the sender, only within the window; history shows the mark.
    // Another business's people do not see the message at all (404), no token is 401.
    let mid = sent["message"]["id"].as_str().expect("id").to_owned();
    let other = business(&app.store, "Elsewhere", 1).await;
    for outsider in [&other.owner_token, &other.customer_tokens[0]] {
        let (status, body) = app.patch(&format!("/api/messages/{mid}"), outsider, json!({"content": "x"})).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) =
            app.call(reqwest::Method::DELETE, &format!("/api/messages/{mid}"), Some(outsider), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
    let (status, body) = app.call(reqwest::Method::DELETE, &format!("/api/messages/{mid}"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, body) =
        app.patch(&format!("/api/messages/{mid}"), &a.customer_tokens[0], json!({"content": "no"})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = app.patch(&format!("/api/messages/{mid}"), &a.owner_token, json!({"content": "  "})).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = app.patch(&format!("/api/messages/{mid}"), &a.owner_token, json!({"content": "edited"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["content"], "edited");
    assert!(body["message"]["editedAt"].is_string());
    let (_, list) = app.get("/api/messages/conversations", &a.customer_tokens[0]).await;
    assert_eq!(list["conversations"][0]["lastMessage"], "edited");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = app.patch(&format!("/api/messages/{mid}"), &a.owner_token, json!({"content": "late"})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) =
        app.call(reqwest::Method::DELETE, &format!("/api/messages/{mid}"), Some(&a.owner_token), None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    assert!(on_disk.exists(), "a refused delete kept the file");

    // Delete within the window: the file leaves the disk.
    let (_, fresh) = send_with(&app, &a.owner_token, &conv, json!([]), None).await;
    let other = upload(&app, &a.owner_token, &conv, "b.png", png(5, 5)).await;
    let other_id = other["id"].as_str().expect("id").to_owned();
    let (status, with_file) = send_with(&app, &a.owner_token, &conv, json!([{"id": other_id}]), None).await;
    assert_eq!(status, StatusCode::CREATED, "{with_file}");
    let other_path = dir.path().join("files").join("uploads").join(&other_id);
    assert!(other_path.exists());
    let wid = with_file["message"]["id"].as_str().expect("id");
    let (status, body) =
        app.call(reqwest::Method::DELETE, &format!("/api/messages/{wid}"), Some(&a.owner_token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!other_path.exists(), "the deleted message's file is gone from disk");
    let (status, body) =
        app.call(reqwest::Method::DELETE, &format!("/api/messages/{wid}"), Some(&a.owner_token), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/messages/conversations", &a.customer_tokens[0]).await;
    assert_eq!(list["conversations"][0]["lastMessage"], "This message was deleted");
    assert!(fresh["message"]["id"].is_string());
    app.finish().await;
}

/// Edits and deletes reach every socket in the room, across gateways; a
/// socket can edit and delete too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletes_reach_both_gateways() {
    let s3 = S3Server::start("omnibiz-cluster-files").await;
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = TestCluster::start(1, 2, &env).await;
    let store = cluster.store().await;
    let a: Business = business(&store, "Edits", 1).await;
    let api = cluster.api_urls()[0].clone();
    let gws = cluster.gateway_urls();
    let http = reqwest::Client::new();
    let conv = crate::common::cluster::open_over_http(&api, &a.owner_token, &a.customers[0].id.to_hex()).await;
    let mut owner = SioClient::connect(&gws[0], Some(&a.owner_token)).await.expect("owner socket");
    let mut customer = SioClient::connect(&gws[1], Some(&a.customer_tokens[0])).await.expect("customer socket");
    for c in [&mut owner, &mut customer] {
        let ack = c.call("join_conversation", json!({"conversationId": conv})).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    // Upload over the API, send over a socket on gateway 0 with the upload's id.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(png(16, 16)).file_name("p.png".to_owned()));
    let r = http
        .post(format!("{api}/api/messages/conversations/{conv}/attachments"))
        .bearer_auth(&a.owner_token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(r.status(), StatusCode::CREATED);
    let up: Value = r.json().await.expect("json");
    let uid = up["attachment"]["id"].as_str().expect("id").to_owned();
    let ack = owner
        .call("send_message", json!({"conversationId": conv, "message": "photo", "attachments": [{"id": uid}]}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let received = customer.expect("message_received").await;
    assert_eq!(received["attachments"][0]["id"], uid.as_str());
    assert_eq!(received["attachments"][0]["thumbnailUrl"], format!("/api/messages/attachments/{uid}/thumbnail"));
    let mid = received["id"].as_str().expect("id").to_owned();

    // Edit over the socket on gateway 0: the customer on gateway 1 hears it.
    let ack = owner.call("edit_message", json!({"messageId": mid, "content": "photo (edited)"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let updated = customer.expect("message_updated").await;
    assert_eq!(updated["id"], mid.as_str());
    assert_eq!(updated["content"], "photo (edited)");
    assert!(updated["editedAt"].is_string());
    // The customer may not edit or delete it.
    let ack = customer.call("delete_message", json!({"messageId": mid})).await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["code"], "FORBIDDEN");
    // Delete over REST: both sockets hear it, and the file is gone from the bucket.
    let r = http.delete(format!("{api}/api/messages/{mid}")).bearer_auth(&a.owner_token).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::OK);
    for c in [&mut owner, &mut customer] {
        let d = c.expect("message_deleted").await;
        assert_eq!(d["messageId"], mid.as_str());
        assert_eq!(d["conversationId"], conv.as_str());
    }
    assert!(!s3.keys().await.iter().any(|k| k.starts_with(&format!("uploads/{uid}"))));
}
