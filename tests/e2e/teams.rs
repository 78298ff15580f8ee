//! Teams: an owner, an admin, two agents and three customers, across an
//! `api` and two gateways (and in `serve` on SQLite): members and roles,
//! assignment events and who sees what, internal notes the customer's
//! sockets and reads never get, and a removed member losing access at once.

use std::sync::Arc;
use std::time::Duration;

use omnibiz_domain::{User, UserRole};
use omnibiz_service::auth::Principal;
use omnibiz_store::{Store, fixtures};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::cluster::TestCluster;
use crate::common::sio::SioClient;
use crate::common::{Backend, business, spawn_with, token};

const QUIET: Duration = Duration::from_millis(1500);

/// REST calls against one API address.
#[derive(Clone)]
struct Rest {
    api: String,
    http: reqwest::Client,
}

impl Rest {
    async fn call(&self, method: reqwest::Method, path: &str, tok: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.api)).bearer_auth(tok);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }
    async fn get(&self, path: &str, tok: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, tok, None).await
    }
    async fn post(&self, path: &str, tok: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, tok, Some(body)).await
    }
    async fn put(&self, path: &str, tok: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::PUT, path, tok, Some(body)).await
    }
    async fn delete(&self, path: &str, tok: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::DELETE, path, tok, None).await
    }
    async fn send_as(&self, tok: &str, conv: &str, content: &str) -> (StatusCode, Value) {
        self.post("/api/messages/send", tok, json!({"conversationId": conv, "content": content})).await
    }
    async fn ids(&self, tok: &str, query: &str) -> (Vec<String>, Value) {
        let (s, v) = self.get(&format!("/api/messages/conversations{query}"), tok).await;
        assert_eq!(s, 200, "{v}");
        let mut ids: Vec<String> = v["conversations"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        (ids, v["counts"].clone())
    }
    /// `conv`'s unread count in the caller's list.
    async fn unread_in_list(&self, tok: &str, conv: &str) -> i64 {
        let (s, v) = self.get("/api/messages/conversations", tok).await;
        assert_eq!(s, 200, "{v}");
        let list = v["conversations"].as_array().expect("list");
        let c = list.iter().find(|c| c["id"] == conv).unwrap_or_else(|| panic!("{conv} not listed: {v}"));
        c["unreadCount"].as_i64().expect("unreadCount")
    }
}

async fn user(store: &Arc<dyn Store>, name: &str) -> (User, String) {
    let u = User { email: format!("{}@team.example", name.to_lowercase()), ..fixtures::owner(name) };
    store.insert_user(&u).await.expect("insert user");
    // The main app's token for any user: `role` says nothing about the team.
    let t = token(&Principal::User { id: u.id, role: UserRole::BusinessOwner });
    (u, t)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The whole scenario; `gws` are the two gateway addresses (the same one twice in `serve`).
async fn a_team_answers_together(store: Arc<dyn Store>, rest: Rest, gws: [String; 2]) {
    let b = business(&store, "Teams", 3).await;
    let owner = b.owner_token.clone();
    let (ana, ana_t) = user(&store, "Ana").await;
    let (ben, ben_t) = user(&store, "Ben").await;
    let (ada, ada_t) = user(&store, "Ada").await;
    let other = business(&store, "Rival", 0).await;

    // Members and roles.
    for (u, role) in [(&ana, "agent"), (&ben, "agent")] {
        let (s, v) = rest.post("/api/team/members", &owner, json!({"userId": u.id.to_hex(), "role": role})).await;
        assert_eq!(s, 201, "{v}");
    }
    // By email too (the main app's account, whatever the case).
    let (s, v) = rest.post("/api/team/members", &owner, json!({"email": " ADA@team.example", "role": "admin"})).await;
    assert_eq!(s, 201, "{v}");
    assert!(v["team"]["members"].as_array().expect("members").iter().any(|m| m["userId"] == ada.id.to_hex()), "{v}");
    let (s, v) = rest.post("/api/team/members", &owner, json!({"email": "nobody@team.example", "role": "agent"})).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::NOT_FOUND, Some("NOT_FOUND")), "{v}");
    let both = json!({"email": "ada@team.example", "userId": ada.id.to_hex(), "role": "admin"});
    let (s, v) = rest.post("/api/team/members", &owner, both).await;
    assert_eq!(s, 400, "one or the other: {v}");
    let (s, v) = rest.post("/api/team/members", &owner, json!({"userId": ana.id.to_hex(), "role": "agent"})).await;
    assert_eq!(s, 200, "adding again keeps one membership: {v}");
    let (s, v) = rest.post("/api/team/members", &owner, json!({"userId": b.owner.id.to_hex(), "role": "agent"})).await;
    assert_eq!((s, v["success"].clone()), (StatusCode::BAD_REQUEST, json!(false)), "{v}");
    let (s, v) = rest.post("/api/team/members", &ana_t, json!({"userId": ben.id.to_hex(), "role": "admin"})).await;
    assert_eq!(s, 403, "an agent manages nothing: {v}");
    let (s, v) =
        rest.post("/api/team/members", &other.owner_token, json!({"userId": ana.id.to_hex(), "role": "agent"})).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")), "one team per user: {v}");
    let (s, v) = rest.post("/api/team/members", &owner, json!({"userId": ana.id.to_hex(), "role": "boss"})).await;
    assert_eq!(s, 400, "{v}");
    let (s, team) = rest.get("/api/team", &ben_t).await;
    assert_eq!(s, 200, "{team}");
    let roles: Vec<(String, String)> = team["team"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| (m["name"].as_str().unwrap_or("").to_owned(), m["role"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(roles.len(), 4, "{team}");
    assert_eq!(roles[0].1, "owner");
    assert!(roles.contains(&("Ana".into(), "agent".into())) && roles.contains(&("Ada".into(), "admin".into())));
    let (s, _) = rest.get("/api/team", &b.customer_tokens[0]).await;
    assert_eq!(s, 403, "customers have no team");

    // Three conversations, opened by an agent for the business.
    let mut convs = Vec::new();
    for c in &b.customers {
        let (s, v) = rest.post("/api/messages/conversations", &ana_t, json!({"customerId": c.id.to_hex()})).await;
        assert!(s == 201 || s == 200, "{v}");
        assert_eq!(v["conversation"]["businessOwnerId"], b.owner.id.to_hex(), "the business's conversation");
        convs.push(v["conversation"]["id"].as_str().expect("id").to_owned());
    }
    let (c0, c1, c2) = (convs[0].clone(), convs[1].clone(), convs[2].clone());

    let mut cust0 = SioClient::connect(&gws[0], Some(&b.customer_tokens[0])).await.expect("customer 0");
    let mut owner_s = SioClient::connect(&gws[0], Some(&owner)).await.expect("owner");
    let mut ana_s = SioClient::connect(&gws[1], Some(&ana_t)).await.expect("ana");
    let mut ben_s = SioClient::connect(&gws[1], Some(&ben_t)).await.expect("ben");
    for s in [&mut cust0, &mut owner_s, &mut ana_s] {
        assert_eq!(s.call("join_conversation", json!(c0)).await["ok"], true);
    }

    // The owner assigns c0 to Ana: the team hears it, the customer does not.
    let (s, v) = rest
        .put(&format!("/api/messages/conversations/{c0}/assignee"), &owner, json!({"assignee": ana.id.to_hex()}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["assignee"], ana.id.to_hex());
    for s in [&mut ana_s, &mut ben_s] {
        let heard = s.try_expect("conversation_assigned", Duration::from_secs(5)).await.expect("the team hears it");
        assert_eq!(
            (heard["conversationId"].as_str(), heard["assignee"].as_str()),
            (Some(c0.as_str()), Some(ana.id.to_hex().as_str()))
        );
    }
    assert!(cust0.try_expect("conversation_assigned", QUIET).await.is_none(), "not the customer's business");
    let (_, mine) = rest.get(&format!("/api/messages/conversations/{c0}"), &b.customer_tokens[0]).await;
    assert!(mine["conversation"].get("assignee").is_none(), "the customer's view has no assignee: {mine}");

    // Who sees what: Ben (an agent) the unassigned ones only.
    let (ids, counts) = rest.ids(&ben_t, "").await;
    assert_eq!(ids, sorted(vec![c1.clone(), c2.clone()]));
    assert_eq!(counts["assigned"], json!({"mine": 0, "unassigned": 2, "all": 2}));
    assert_eq!(rest.ids(&ana_t, "?assigned=mine").await.0, vec![c0.clone()]);
    let (ids, counts) = rest.ids(&ada_t, "").await;
    assert_eq!(ids.len(), 3, "an admin sees all");
    assert_eq!(counts["assigned"], json!({"mine": 0, "unassigned": 2, "all": 3}));
    assert_eq!(rest.ids(&owner, "?assigned=unassigned").await.0, sorted(vec![c1.clone(), c2.clone()]));
    let (s, _) = rest.get(&format!("/api/messages/conversations/{c0}"), &ben_t).await;
    assert_eq!(s, 404, "another agent's conversation is not found");
    let (s, _) = rest.post("/api/messages/send", &ben_t, json!({"conversationId": c0, "content": "hi"})).await;
    assert_eq!(s, 404);
    assert_eq!(ben_s.call("join_conversation", json!(c0)).await["code"], "NOT_FOUND");

    // Ana answers over her socket: the customer sees her with the business's name.
    let ack = ana_s.call("send_message", json!({"conversationId": c0, "content": "I'm on it"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let got = cust0.try_expect("message_received", Duration::from_secs(5)).await.expect("the customer gets it");
    assert_eq!(got["senderName"], "Ana (Teams Ltd)", "{got}");
    assert_eq!((got["senderRole"].as_str(), got["senderTeamRole"].as_str()), (Some("business_owner"), Some("agent")));
    assert_eq!(got["senderId"], ana.id.to_hex());
    let to_owner = owner_s.try_expect("message_received", Duration::from_secs(5)).await.expect("the owner sees it");
    assert_eq!(to_owner["content"], "I'm on it");

    // Read state per person: the owner has looked at the inbox, the
    // customer writes twice, Ana reads. The customer sees "read" (someone of
    // the business read it), Ana's count is 0, the owner's and Ada's still 2.
    assert_eq!(rest.unread_in_list(&owner, &c0).await, 0);
    for text in ["Thanks!", "When does it ship?"] {
        let (s, v) = rest.send_as(&b.customer_tokens[0], &c0, text).await;
        assert_eq!(s, 201, "{v}");
    }
    let (s, v) = rest.post(&format!("/api/messages/conversations/{c0}/read"), &ana_t, json!({})).await;
    assert_eq!((s, v["unreadCount"].as_i64()), (StatusCode::OK, Some(0)), "{v}");
    let seen = cust0.try_expect("messages_read", Duration::from_secs(5)).await.expect("the customer hears of it");
    assert_eq!(seen["readerId"], ana.id.to_hex(), "{seen}");
    assert_eq!(rest.unread_in_list(&ana_t, &c0).await, 0);
    assert_eq!(rest.unread_in_list(&owner, &c0).await, 2, "Ana's reading is not the owner's");
    assert_eq!(rest.unread_in_list(&ada_t, &c0).await, 2, "nor Ada's (she saw the inbox before)");
    let (s, v) = rest.post(&format!("/api/messages/conversations/{c0}/read"), &owner, json!({})).await;
    assert_eq!((s, v["unreadCount"].as_i64()), (StatusCode::OK, Some(0)), "{v}");
    assert_eq!(rest.unread_in_list(&owner, &c0).await, 0);
    for s in [&mut owner_s, &mut ana_s] {
        assert_eq!(s.collect("message_received", QUIET).await.len(), 2, "the customer's two");
    }
    cust0.collect("message_received", QUIET).await;

    // An internal note: the business side only, everywhere.
    let (s, v) = rest
        .post(
            "/api/messages/send",
            &ana_t,
            json!({"conversationId": c0, "content": "VIP: refund the shipping", "isPrivate": true}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    let note_id = v["message"]["id"].as_str().expect("id").to_owned();
    assert_eq!(v["message"]["isPrivate"], true);
    let heard = owner_s.try_expect("message_received", Duration::from_secs(5)).await.expect("the owner gets the note");
    assert_eq!(heard["isPrivate"], true, "{heard}");
    assert!(cust0.try_expect("message_received", QUIET).await.is_none(), "a note never reaches the customer's socket");
    let (_, theirs) = rest.get(&format!("/api/messages/conversations/{c0}"), &b.customer_tokens[0]).await;
    let contents: Vec<&str> =
        theirs["messages"].as_array().expect("messages").iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, vec!["I'm on it", "Thanks!", "When does it ship?"], "{theirs}");
    assert_eq!(theirs["conversation"]["lastMessage"], "When does it ship?", "not in the preview");
    let (_, ours) = rest.get(&format!("/api/messages/conversations/{c0}"), &owner).await;
    assert_eq!(ours["messages"].as_array().expect("messages").len(), 4, "the business reads it");
    let (_, found) = rest.get("/api/messages/search?q=refund", &b.customer_tokens[0]).await;
    assert_eq!(found["results"].as_array().map_or(0, Vec::len), 0, "not in the customer's search: {found}");
    let (_, found) = rest.get("/api/messages/search?q=refund", &ada_t).await;
    assert_eq!(found["results"].as_array().map_or(0, Vec::len), 1, "in the team's: {found}");
    // Replayed on rejoin: not to the customer.
    let mut again = SioClient::connect(&gws[1], Some(&b.customer_tokens[0])).await.expect("customer again");
    assert_eq!(again.call("join_conversation", json!({"conversationId": c0, "lastSeq": 0})).await["ok"], true);
    let replayed = again.collect("message_received", QUIET).await;
    assert_eq!(
        replayed.iter().map(|m| m["content"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        vec!["I'm on it", "Thanks!", "When does it ship?"]
    );
    // The customer cannot write one, quote one, react to one or fetch one.
    let (s, _) = rest
        .post(
            "/api/messages/send",
            &b.customer_tokens[0],
            json!({"conversationId": c0, "content": "x", "isPrivate": true}),
        )
        .await;
    assert_eq!(s, 403);
    let (s, v) = rest
        .post(
            "/api/messages/send",
            &b.customer_tokens[0],
            json!({"conversationId": c0, "content": "x", "replyTo": note_id}),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = rest
        .call(
            reqwest::Method::PUT,
            &format!("/api/messages/{note_id}/reactions/%F0%9F%91%8D"),
            &b.customer_tokens[0],
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = rest
        .call(
            reqwest::Method::PATCH,
            &format!("/api/messages/{note_id}"),
            &b.customer_tokens[0],
            Some(json!({"content": "y"})),
        )
        .await;
    assert_eq!(s, 404);
    // A public reply may not quote a note either (its excerpt would show).
    let (s, _) = rest
        .post("/api/messages/send", &owner, json!({"conversationId": c0, "content": "x", "replyTo": note_id}))
        .await;
    assert_eq!(s, 400);

    // Agents: take an unassigned one, not someone else's, and assign only themselves.
    let ack = ben_s.call("assign_conversation", json!({"conversationId": c1, "assignee": ben.id.to_hex()})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["conversation"]["assignee"], ben.id.to_hex());
    let ack = ben_s.call("assign_conversation", json!({"conversationId": c2, "assignee": ana.id.to_hex()})).await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    let ack = ben_s.call("assign_conversation", json!({"conversationId": c0, "assignee": ben.id.to_hex()})).await;
    assert_eq!(ack["code"], "NOT_FOUND", "{ack}");
    let (s, v) = rest
        .put(
            &format!("/api/messages/conversations/{c2}/assignee"),
            &owner,
            json!({"assignee": other.owner.id.to_hex()}),
        )
        .await;
    assert_eq!(s, 400, "not in the team: {v}");

    // The admin moves c0 to Ben: Ana's socket leaves its room.
    let (s, v) = rest
        .put(&format!("/api/messages/conversations/{c0}/assignee"), &ada_t, json!({"assignee": ben.id.to_hex()}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(ana_s.try_expect("conversation_assigned", Duration::from_secs(5)).await.is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, _) = rest.send_as(&b.customer_tokens[0], &c0, "anyone there?").await;
    assert_eq!(s, 201);
    assert!(ana_s.try_expect("message_received", QUIET).await.is_none(), "no longer hers: nothing reaches her");
    assert_eq!(ben_s.call("join_conversation", json!(c0)).await["ok"], true, "now Ben's");
    let (s, _) = rest.get(&format!("/api/messages/conversations/{c0}"), &ana_t).await;
    assert_eq!(s, 404);

    // Removing a member: sessions end within seconds, access at once, their conversations unassigned.
    let (s, _) = rest
        .put(&format!("/api/messages/conversations/{c2}/assignee"), &owner, json!({"assignee": ana.id.to_hex()}))
        .await;
    assert_eq!(s, 200);
    let (s, v) = rest.delete(&format!("/api/team/members/{}", ana.id.to_hex()), &ada_t).await;
    assert_eq!(s, 200, "{v}");
    let told = ana_s.try_expect("session_ended", Duration::from_secs(8)).await.expect("told");
    assert_eq!(told["reason"], "revoked", "{told}");
    for _ in 0..50 {
        if ana_s.is_closed() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ana_s.is_closed(), "the removed member's socket is closed");
    let (s, _) = rest.get("/api/messages/conversations", &ana_t).await;
    assert_eq!(s, 401, "her token is refused");
    let (_, v) = rest.get(&format!("/api/messages/conversations/{c2}"), &owner).await;
    assert!(v["conversation"].get("assignee").is_none(), "her conversations are unassigned: {v}");
    let (s, _) = rest.delete(&format!("/api/team/members/{}", ana.id.to_hex()), &owner).await;
    assert_eq!(s, 404, "once");

    // Agents seeing all, when the business says so.
    let (s, v) = rest.put("/api/team/settings", &owner, json!({"agentsSeeAll": true})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = rest.put("/api/team/settings", &ben_t, json!({"agentsSeeAll": false})).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = rest.put("/api/team/settings", &owner, json!({"agentsSeeAll": 1})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = rest.put("/api/team/settings", &owner, json!({"autoAssign": true, "maxOpenPerAgent": 0})).await;
    assert_eq!(s, 400, "{v}");

    // Automatic assignment: Ben (the one agent left, online) already has two
    // open conversations; with a bound of 2 a customer's message in the
    // unassigned c2 leaves it unassigned, with a bound of 5 it goes to Ben.
    ben_s.collect("conversation_assigned", Duration::from_millis(500)).await; // what Ben heard so far
    let (s, v) = rest.put("/api/team/settings", &owner, json!({"autoAssign": true, "maxOpenPerAgent": 2})).await;
    assert_eq!((s, v["settings"]["autoAssign"].clone()), (StatusCode::OK, json!(true)), "{v}");
    let (s, _) = rest.send_as(&b.customer_tokens[2], &c2, "hello?").await;
    assert_eq!(s, 201);
    assert!(ben_s.try_expect("conversation_assigned", QUIET).await.is_none(), "Ben is full");
    let (_, v) = rest.get(&format!("/api/messages/conversations/{c2}"), &owner).await;
    assert!(v["conversation"].get("assignee").is_none(), "{v}");
    let (s, _) = rest.put("/api/team/settings", &owner, json!({"autoAssign": true, "maxOpenPerAgent": 5})).await;
    assert_eq!(s, 200);
    let (s, _) = rest.send_as(&b.customer_tokens[2], &c2, "anyone?").await;
    assert_eq!(s, 201);
    let heard =
        ben_s.try_expect("conversation_assigned", Duration::from_secs(5)).await.expect("assigned automatically");
    assert_eq!(
        (heard["assignee"].as_str(), heard["automatic"].as_bool()),
        (Some(ben.id.to_hex().as_str()), Some(true))
    );
    let (_, v) = rest.get(&format!("/api/messages/conversations/{c2}"), &owner).await;
    assert_eq!(v["conversation"]["assignee"], ben.id.to_hex());

    // Across tenants: the rival business and another customer see nothing.
    let (s, _) = rest.get(&format!("/api/messages/conversations/{c0}"), &other.owner_token).await;
    assert_eq!(s, 404);
    let mut cust1 = SioClient::connect(&gws[1], Some(&b.customer_tokens[1])).await.expect("customer 1");
    assert_eq!(cust1.call("join_conversation", json!(c0)).await["code"], "NOT_FOUND");
}

/// A group of three customers (and one customer outside it): live messages
/// to every member once, per-member read state and `readBy`, notes kept
/// from them, and a removed member cut off.
async fn a_group_chats_with_per_member_state(store: Arc<dyn Store>, rest: Rest, gws: [String; 2]) {
    let b = business(&store, "Groups", 4).await;
    let owner = b.owner_token.clone();
    let t = &b.customer_tokens;
    let hex = |i: usize| b.customers[i].id.to_hex();
    let (s, v) = rest
        .post("/api/groups", &owner, json!({"title": "Family order", "customerIds": [hex(0), hex(1), hex(2)]}))
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["conversation"]["type"].as_str(), v["conversation"]["name"].as_str()),
        (Some("group"), Some("Family order"))
    );
    assert_eq!(v["conversation"]["members"].as_array().map(Vec::len), Some(3));
    let g = v["conversation"]["id"].as_str().expect("id").to_owned();
    // Bad input: someone else's customer, no customers, a customer creating one.
    let rival = business(&store, "Rivals", 1).await;
    let (s, _) =
        rest.post("/api/groups", &owner, json!({"title": "x", "customerIds": [rival.customers[0].id.to_hex()]})).await;
    assert_eq!(s, 400);
    let (s, _) = rest.post("/api/groups", &owner, json!({"title": "x", "customerIds": []})).await;
    assert_eq!(s, 400);
    let (s, _) = rest.post("/api/groups", &t[0], json!({"title": "x", "customerIds": [hex(1)]})).await;
    assert_eq!(s, 403);

    // Members list it; the customer outside does not see it.
    let (ids, _) = rest.ids(&t[1], "").await;
    assert_eq!(ids, vec![g.clone()]);
    let (s, _) = rest.get(&format!("/api/messages/conversations/{g}"), &t[3]).await;
    assert_eq!(s, 404);
    let mut outsider = SioClient::connect(&gws[0], Some(&t[3])).await.expect("outsider");
    assert_eq!(outsider.call("join_conversation", json!(g)).await["code"], "NOT_FOUND");

    let mut socks = Vec::new();
    for i in 0..3 {
        let mut s = SioClient::connect(&gws[i % 2], Some(&t[i])).await.expect("member");
        assert_eq!(s.call("join_conversation", json!(g)).await["ok"], true);
        socks.push(s);
    }
    let mut owner_s = SioClient::connect(&gws[1], Some(&owner)).await.expect("owner");
    assert_eq!(owner_s.call("join_conversation", json!(g)).await["ok"], true);

    // A member writes: every other member and the business get it, once.
    let ack = socks[0].call("send_message", json!({"conversationId": g, "content": "Who picks up the cake?"})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let seq = ack["message"]["seq"].as_i64().expect("seq");
    for s in socks[1..].iter_mut().chain(std::iter::once(&mut owner_s)) {
        let got = s.collect("message_received", QUIET).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0]["content"], "Who picks up the cake?");
        assert!(s.try_expect("new_message_notification", Duration::from_secs(3)).await.is_some(), "notified");
    }
    assert!(socks[0].try_expect("message_received", QUIET).await.is_none(), "not back to the sender");

    // Per-member read state: c1 reads; c2 still has it unread; readBy says who.
    let (s, v) = rest.post(&format!("/api/messages/conversations/{g}/read"), &t[1], json!({})).await;
    assert_eq!((s, v["unreadCount"].as_i64()), (StatusCode::OK, Some(0)), "{v}");
    let heard = socks[0].try_expect("messages_read", Duration::from_secs(5)).await.expect("the sender hears it");
    assert_eq!(heard["readerId"], hex(1));
    let (_, list) = rest.get("/api/messages/conversations", &t[2]).await;
    assert_eq!(list["conversations"][0]["unreadCount"], 1, "c2's own count: {list}");
    let message = |v: &Value| {
        v["messages"].as_array().expect("messages").iter().find(|m| m["seq"] == seq).cloned().expect("the message")
    };
    let (_, v) = rest.get(&format!("/api/messages/conversations/{g}"), &t[0]).await;
    let m = message(&v);
    assert_eq!(
        m["readBy"].as_array().map(|r| r.iter().map(|x| x["userId"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(hex(1))])
    );
    assert_ne!(m["status"], "read", "not read by all yet: {m}");
    assert_eq!(v["messages"][0]["isSystem"], true, "the history starts with the group's creation: {v}");
    for tok in [&t[2], &owner] {
        let (s, _) = rest.post(&format!("/api/messages/conversations/{g}/read"), tok, json!({})).await;
        assert_eq!(s, 200);
    }
    let (_, v) = rest.get(&format!("/api/messages/conversations/{g}"), &t[0]).await;
    let m = message(&v);
    assert_eq!(m["status"], "read", "read by all: {m}");
    assert_eq!(m["readBy"].as_array().map(Vec::len), Some(3));

    // A note in the group stays with the business.
    let (s, _) = rest
        .post(
            "/api/messages/send",
            &owner,
            json!({"conversationId": g, "content": "They ordered twice", "isPrivate": true}),
        )
        .await;
    assert_eq!(s, 201);
    assert!(socks[1].try_expect("message_received", QUIET).await.is_none(), "no member gets a note");

    // c2 is removed: told, out of the room, out of the group.
    let (s, v) = rest
        .call(reqwest::Method::PATCH, &format!("/api/groups/{g}/members"), &owner, Some(json!({"remove": [hex(2)]})))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversation"]["members"].as_array().map(Vec::len), Some(2));
    let told = socks[2].try_expect("group_members_changed", Duration::from_secs(5)).await.expect("told");
    assert_eq!(told["removed"], json!([hex(2)]));
    let record = socks[1].try_expect("message_received", Duration::from_secs(5)).await.expect("the record");
    assert_eq!(record["isSystem"], true, "{record}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, _) = rest.send_as(&t[0], &g, "just us now").await;
    assert_eq!(s, 201);
    assert!(socks[1].try_expect("message_received", Duration::from_secs(5)).await.is_some());
    let got: Vec<Value> = socks[2].collect("message_received", QUIET).await;
    assert!(got.iter().all(|m| m["content"] != "just us now"), "a removed member's socket gets nothing more: {got:?}");
    let (s, _) = rest.get(&format!("/api/messages/conversations/{g}"), &t[2]).await;
    assert_eq!(s, 404);
    let (s, _) = rest.send_as(&t[2], &g, "let me back").await;
    assert_eq!(s, 404);
    let (s, _) = rest
        .call(reqwest::Method::PATCH, &format!("/api/groups/{g}/members"), &t[0], Some(json!({"add": [hex(3)]})))
        .await;
    assert_eq!(s, 403, "members do not manage the group");
    let (s, _) = rest
        .call(
            reqwest::Method::PATCH,
            &format!("/api/groups/{g}/members"),
            &owner,
            Some(json!({"remove": [hex(0), hex(1)]})),
        )
        .await;
    assert_eq!(s, 400, "a group keeps a customer");
}

/// Runs a scenario on an api and two gateways over MongoDB and Redis.
async fn across_gateways<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>, Rest, [String; 2]) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cluster = TestCluster::start(1, 2, &[]).await;
    let store = cluster.store().await;
    let rest = Rest { api: cluster.api_urls()[0].clone(), http: reqwest::Client::new() };
    let gws = cluster.gateway_urls();
    scenario(store, rest, [gws[0].clone(), gws[1].clone()]).await;
}

/// Runs a scenario on `serve` over SQLite (one address for REST and sockets).
async fn on_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Arc<dyn Store>, Rest, [String; 2]) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let s = crate::common::settings(Backend::Sqlite, dir.path(), "unused");
    let app = spawn_with(Backend::Sqlite, s, omnibiz::app::Target::Serve, dir).await;
    let rest = Rest { api: app.base.clone(), http: reqwest::Client::new() };
    scenario(Arc::clone(&app.store), rest, [app.base.clone(), app.base.clone()]).await;
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_answers_together_across_gateways() {
    across_gateways(a_team_answers_together).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_answers_together_on_sqlite() {
    on_sqlite(a_team_answers_together).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_chats_across_gateways() {
    across_gateways(a_group_chats_with_per_member_state).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_chats_on_sqlite() {
    on_sqlite(a_group_chats_with_per_member_state).await;
}
