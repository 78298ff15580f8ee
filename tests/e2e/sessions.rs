//! Sessions end when their token does, can be extended on the live socket,
//! and end everywhere when revoked.

use std::sync::Arc;
use std::time::Duration;

use omnibiz::app::Target;
use omnibiz_service::auth::{Principal, mint_hs256};
use serde_json::json;

use crate::common::cluster::{TestCluster, open_over_http};
use crate::common::sio::SioClient;
use crate::common::{Backend, SECRET, business, open, settings, spawn_with, token};

fn short(p: &Principal, ttl: u64) -> String {
    mint_hs256(SECRET.as_bytes(), p, ttl).expect("mint")
}

/// A token that expires in 2 s ends its socket within the leeway (1 s here)
/// and the 1 s sweep; the client is told why, then disconnected. A socket
/// that sends `refresh_token` with a fresh token in time stays, and a token
/// of someone else is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_ends_its_socket_unless_refreshed() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = settings(Backend::Sqlite, dir.path(), "sessions");
    s.jwt_leeway_secs = 1;
    let app = spawn_with(Backend::Sqlite, s, Target::Serve, dir).await;
    let b = business(&app.store, "Expiry", 2).await;
    let conv = open(&app, &b, 0).await;
    let who = Principal::Customer { id: b.customers[0].id };

    let mut ending = SioClient::connect(&app.base, Some(&short(&who, 2))).await.expect("connect");
    let mut kept = SioClient::connect(&app.base, Some(&short(&who, 2))).await.expect("connect");
    assert_eq!(kept.call("join_conversation", json!(conv)).await["ok"], true);

    let other = token(&Principal::Customer { id: b.customers[1].id });
    let refused = kept.call("refresh_token", json!({"token": other})).await;
    assert_eq!(refused["code"], "TOKEN_MISMATCH", "{refused}");
    let refreshed = kept.call("refresh_token", json!({"token": short(&who, 60)})).await;
    assert_eq!(refreshed["ok"], true, "{refreshed}");
    assert!(refreshed["expiresAt"].is_string(), "{refreshed}");

    let started = tokio::time::Instant::now();
    let told = ending.try_expect("session_ended", Duration::from_secs(8)).await.expect("told why");
    assert_eq!(told["reason"], "token_expired", "{told}");
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(6), "ended {took:?} after connecting: exp 2 s + leeway 1 s + sweep 1 s");
    assert!(took >= Duration::from_millis(1500), "not before the token's exp plus the leeway: {took:?}");
    for _ in 0..50 {
        if ending.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ending.is_closed(), "the expired socket is closed");

    // Past the first token's expiry, the refreshed socket still works.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!kept.is_closed());
    let ack = kept.call("send_message", json!({"conversationId": conv, "content": "still here"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    app.finish().await;
}

/// Revoking a customer's sessions (by their business over REST) disconnects
/// the customer's sockets on every gateway within seconds, and their old
/// token no longer connects or calls the API; someone else's customer
/// cannot be revoked (404).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_principal_is_disconnected_on_every_gateway() {
    let cluster = TestCluster::start(1, 2, &[]).await;
    let store = cluster.store().await;
    let (api, gws) = (cluster.api_urls()[0].clone(), cluster.gateway_urls());
    let b = business(&store, "Revoke", 2).await;
    let other = business(&store, "Other", 1).await;
    let conv = open_over_http(&api, &b.owner_token, &b.customers[0].id.to_hex()).await;
    let old = b.customer_tokens[0].clone();
    let mut on_first = SioClient::connect(&gws[0], Some(&old)).await.expect("connect");
    let mut on_second = SioClient::connect(&gws[1], Some(&old)).await.expect("connect");
    let mut bystander = SioClient::connect(&gws[1], Some(&b.customer_tokens[1])).await.expect("connect");
    assert_eq!(on_first.call("join_conversation", json!(conv)).await["ok"], true);

    let http = reqwest::Client::new();
    let revoke = |tok: &str, body: serde_json::Value| {
        http.post(format!("{api}/api/sessions/revoke")).bearer_auth(tok.to_owned()).json(&body).send()
    };
    for bad in [
        json!({"customerId": "nope"}),
        json!({"userId": b.owner.id.to_hex(), "customerId": b.customers[0].id.to_hex()}),
        json!({"who": 1}),
    ] {
        let r = revoke(&b.owner_token, bad.clone()).await.expect("revoke");
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = revoke(&other.owner_token, json!({"customerId": b.customers[0].id.to_hex()})).await.expect("revoke");
    assert_eq!(r.status(), 404, "not their customer");
    let r = revoke(&b.owner_token, json!({"customerId": b.customers[0].id.to_hex()})).await.expect("revoke");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["revokedAt"].is_string(), "{body}");

    for (i, c) in [&mut on_first, &mut on_second].into_iter().enumerate() {
        let told = c.try_expect("session_ended", Duration::from_secs(5)).await;
        assert_eq!(told.expect("told on every gateway")["reason"], "revoked", "gateway {i}");
    }
    assert!(bystander.try_expect("session_ended", Duration::from_millis(500)).await.is_none(), "only that customer");
    assert!(!bystander.is_closed());

    // The old token is done: no socket, no REST.
    let again = SioClient::connect(&gws[0], Some(&old)).await;
    assert!(again.is_err_and(|e| e.contains("revoked")), "the revoked token cannot reconnect");
    let me = http.get(format!("{api}/api/messages/me")).bearer_auth(&old).send().await.expect("me");
    assert_eq!(me.status(), 401);
    // Downloads check the token on a path of their own: the same refusal there
    // (an unrevoked token gets past authentication — here 501, no file storage — a revoked one 401).
    let file = format!("{api}/api/messages/attachments/{}/content", omnibiz_domain::ObjectId::new().to_hex());
    let download = http.get(&file).bearer_auth(&old).send().await.expect("download");
    assert_eq!(download.status(), 401);
    // A token issued after the revocation works (issued a second later: same-second tokens count as revoked).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = token(&Principal::Customer { id: b.customers[0].id });
    SioClient::connect(&gws[1], Some(&fresh)).await.expect("a fresh token connects");
}

/// An account deleted in the main app's database (not through us) ends its
/// sockets within the account check interval (1 s here), told why; other
/// principals stay connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_account_is_disconnected() {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_deleted_{}", bson::oid::ObjectId::new());
    let mut s = settings(Backend::Mongo, dir.path(), &db);
    s.account_check_secs = 1;
    let api = spawn_with(Backend::Mongo, s.clone(), Target::Api, Arc::clone(&dir)).await;
    let gw = spawn_with(Backend::Mongo, s, Target::Gateway, dir).await;
    let b = business(&api.store, "Deleted", 2).await;
    let mut doomed = SioClient::connect(&gw.base, Some(&b.customer_tokens[0])).await.expect("connect");
    let mut kept = SioClient::connect(&gw.base, Some(&b.customer_tokens[1])).await.expect("connect");
    let client = mongodb::Client::with_uri_str(crate::common::mongo_uri()).await.expect("mongo");
    let customers = client.database(&db).collection::<bson::Document>("customers");
    let gone = customers.delete_one(bson::doc! {"_id": b.customers[0].id.oid()}).await.expect("delete");
    assert_eq!(gone.deleted_count, 1);
    let told = doomed.try_expect("session_ended", Duration::from_secs(6)).await.expect("told why");
    assert_eq!(told["reason"], "account_deleted", "{told}");
    assert!(kept.try_expect("session_ended", Duration::from_millis(1500)).await.is_none(), "only that account");
    assert!(!kept.is_closed());
    gw.stop().await;
    api.finish().await;
}
