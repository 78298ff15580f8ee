//! Drop-in for a live Node deployment: a database written by the seed's own
//! Mongoose models (`tests/node/legacy`, run with Node and `mongoose` from
//! npm — never our store), then `omnibiz migrate` (a dry run, a run killed
//! half-way, a full run, a repeat), `api` and `gateway` processes on it, the
//! seed's REST reads and socket flow, what we write read back and validated
//! by those models, and messages the Node service keeps writing while we run
//! adopted, served and delivered live — once, whatever the number of pods.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::common::sio::SioClient;
use crate::common::{eventually, mongo_uri, mongo_uri_for, node_dir, omnibiz_process, token};
use bson::{Document, doc};
use futures_util::TryStreamExt as _;
use omnibiz_domain::{CustomerId, UserId, UserRole};
use omnibiz_service::auth::Principal;
use omnibiz_store::mongo::MongoStore;
use serde_json::{Value, json};

/// The Node service's side: runs `tests/node/legacy/legacy.mjs`.
struct NodeService {
    dir: PathBuf,
    uri: String,
}

impl NodeService {
    fn new(db: &str) -> Self {
        Self { dir: node_dir("mongoose"), uri: mongo_uri_for(db) }
    }

    async fn run(&self, args: &[&str]) -> Value {
        let out = tokio::process::Command::new("node")
            .arg("legacy/legacy.mjs")
            .args(args)
            .current_dir(&self.dir)
            .env("MONGODB_URI", &self.uri)
            .output()
            .await
            .expect("run node");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "node legacy.mjs {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

fn migrate_cmd(db: &str, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_omnibiz"));
    cmd.arg("migrate")
        .args(args)
        .env("MONGODB_URI", mongo_uri())
        .env("MONGODB_DATABASE", db)
        .env("LOG_LEVEL", "warn")
        .kill_on_drop(true);
    cmd
}

async fn migrate(db: &str, args: &[&str]) -> String {
    let out = migrate_cmd(db, args).output().await.expect("run migrate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "migrate {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

async fn all_messages(mongo: &MongoStore) -> Vec<Document> {
    let cursor = mongo.database().collection::<Document>("messages").find(doc! {}).await.expect("find");
    cursor.try_collect().await.expect("collect")
}

/// Message id → seq, for the numbered ones.
async fn seqs(mongo: &MongoStore) -> BTreeMap<String, i64> {
    all_messages(mongo)
        .await
        .iter()
        .filter_map(|d| Some((d.get_object_id("_id").ok()?.to_hex(), d.get_i64("seq").ok()?)))
        .collect()
}

async fn readyz(base: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}/readyz")).await.expect("readyz");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `/readyz` answers 503 with a message containing every one of
/// `words` — the real cause, never "not reachable".
async fn unready_saying(base: &str, words: &[&str]) {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = readyz(base).await;
        let said = body["message"].as_str().is_some_and(|m| words.iter().all(|w| m.contains(w)));
        last = body;
        if status == 503 && said {
            assert!(!last["message"].as_str().unwrap_or("").contains("not reachable"), "{last}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("readiness never named {words:?}: {last}");
}

fn owner_token(id: &str) -> String {
    token(&Principal::User { id: id.parse::<UserId>().expect("owner id"), role: UserRole::BusinessOwner })
}

fn customer_token(id: &str) -> String {
    token(&Principal::Customer { id: id.parse::<CustomerId>().expect("customer id") })
}

async fn get(base: &str, path: &str, token: &str) -> Value {
    let r = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.expect("GET");
    assert_eq!(r.status(), 200, "GET {path}");
    r.json().await.expect("json")
}

async fn post(base: &str, path: &str, token: &str, body: Value) -> Value {
    let r = reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await;
    let r = r.expect("POST");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(status.is_success(), "POST {path}: {status} {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_node_service_wrote_is_migrated_and_served() {
    let db = format!("omnibiz_legacy_{}", bson::oid::ObjectId::new());
    let node = NodeService::new(&db);
    let seeded = node.run(&["seed"]).await;
    let owner = seeded["owner"].as_str().expect("owner").to_owned();
    let conv0 = seeded["conversations"][0]["id"].as_str().expect("conv").to_owned();
    let cust0 = seeded["conversations"][0]["customer"].as_str().expect("customer").to_owned();
    let mongo = MongoStore::connect(&mongo_uri(), Some(&db)).await.expect("connect");
    let total = all_messages(&mongo).await.len();
    assert_eq!(total, 47, "the Node side wrote its history");

    // An `api` pod on the un-migrated database stays unready and says why.
    let (_api, api) = omnibiz_process("api", &db, &[("OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS", "200")]).await;
    unready_saying(&api, &["omnibiz migrate"]).await;

    // A dry run reports and changes nothing.
    let out = migrate(&db, &["--dry-run"]).await;
    assert!(out.contains("would fill missing fields in 2"), "{out}");
    assert!(out.contains(&format!("number {total} messages in 2 conversations")), "{out}");
    assert!(seqs(&mongo).await.is_empty(), "the dry run numbered nothing");

    // Killed half-way: a prefix is numbered, nothing is broken.
    let mut slow = migrate_cmd(&db, &["--batch-size", "3", "--pause-ms", "150"]).spawn().expect("spawn migrate");
    let started = eventually(200, Duration::from_millis(25), || async { seqs(&mongo).await.len() >= 6 }).await;
    assert!(started, "the migration made progress");
    slow.kill().await.expect("kill migrate");
    let partial = seqs(&mongo).await.len();
    assert!(partial > 0 && partial < total, "killed half-way: {partial}/{total} numbered");
    assert_eq!(readyz(&api).await.0, 503, "still not ready half-way");

    // The rerun finishes the job; another run changes nothing.
    let out = migrate(&db, &[]).await;
    assert!(out.contains("ready for `omnibiz api`"), "{out}");
    let first = seqs(&mongo).await;
    assert_eq!(first.len(), total, "every message numbered");
    let out = migrate(&db, &[]).await;
    assert!(out.contains("number 0 messages"), "idempotent: {out}");
    assert_eq!(seqs(&mongo).await, first, "a repeat changes no seq");

    // Per conversation: (createdAt, _id) order, strictly increasing, unique.
    for (conv, expected) in seeded["expected"].as_object().expect("expected") {
        let order: Vec<i64> =
            expected.as_array().expect("list").iter().map(|m| first[m["id"].as_str().expect("id")]).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{conv}: seq follows (createdAt, _id): {order:?}");
    }

    // The pod becomes ready by itself.
    let ready = eventually(150, Duration::from_millis(100), || async { readyz(&api).await.0 == 200 }).await;
    assert!(ready, "api ready after the migration: {:?}", readyz(&api).await);

    // The seed's REST reads on the legacy data.
    let owner_tok = owner_token(&owner);
    let cust_tok = customer_token(&cust0);
    let before = node.run(&["verify", &conv0]).await;
    assert_eq!(before["errors"], json!([]), "{before}");
    let list = get(&api, "/api/messages/conversations", &owner_tok).await;
    let convs = list["conversations"].as_array().expect("conversations");
    assert_eq!(convs.len(), 2);
    let c0 = convs.iter().find(|c| c["id"] == conv0.as_str()).expect("conv0 listed");
    assert_eq!(c0["lastMessage"], "legacy 0-39", "the legacy preview: {c0}");
    assert_eq!(c0["lastMessageTime"], before["conversation"]["lastMessageAt"]);
    assert_eq!(c0["unreadCount"], before["conversation"]["unreadCount"]["businessOwner"]);
    assert_eq!(c0["name"], "Legacy Customer 0");
    assert_eq!(c0["type"], "direct");
    let page = get(&api, &format!("/api/messages/conversations/{conv0}"), &owner_tok).await;
    // A message the Node service marked deleted keeps its place as
    // `isDeleted: true`, with its leftover content not served.
    let all = page["messages"].as_array().expect("messages");
    let tombstones: Vec<&Value> = all.iter().filter(|m| m["isDeleted"] == true).collect();
    assert_eq!(tombstones.len(), 1, "the one deleted message, in its place");
    assert_eq!(tombstones[0]["content"], "");
    assert_eq!(tombstones[0]["attachments"], serde_json::json!([]));
    let served: Vec<&str> =
        all.iter().filter(|m| m["isDeleted"] != true).filter_map(|m| m["content"].as_str()).collect();
    let expected: Vec<&str> = seeded["expected"][&conv0]
        .as_array()
        .expect("expected")
        .iter()
        .filter(|m| m["deleted"] != true)
        .filter_map(|m| m["content"].as_str())
        .collect();
    assert_eq!(served, expected, "history in order, the deleted message's content left out");
    assert!(!served.contains(&"legacy 0-2"), "isDeleted is not served");
    let statuses: Vec<&str> =
        page["messages"].as_array().expect("m").iter().filter_map(|m| m["status"].as_str()).collect();
    assert_eq!(statuses[0], "sent", "an owner message the customer never read");
    assert_eq!(statuses[1], "read", "a customer message the owner read in the old service");
    let customers = get(&api, "/api/messages/customers", &owner_tok).await;
    for c in seeded["customers"].as_array().expect("customers") {
        let item = customers["customers"]
            .as_array()
            .expect("list")
            .iter()
            .find(|x| x["id"] == c["id"])
            .expect("customer listed");
        assert_eq!(item["lastLogin"], c["lastLogin"], "{item}");
        assert_eq!(item["joinedDate"], c["joinedDate"], "{item}");
        for k in ["name", "email", "phone", "totalOrders", "totalSpent", "hasConversation", "unreadCount"] {
            assert!(item.get(k).is_some(), "{k} missing: {item}");
        }
    }

    // The seed's socket flow on a legacy conversation, through a gateway pod.
    let (_gw, gw) = omnibiz_process("gateway", &db, &[]).await;
    assert!(eventually(100, Duration::from_millis(100), || async { readyz(&gw).await.0 == 200 }).await);
    let mut owner_sock = SioClient::connect(&gw, Some(&owner_tok)).await.expect("owner connects");
    let mut cust_sock = SioClient::connect(&gw, Some(&cust_tok)).await.expect("customer connects");
    let ack = owner_sock.call("join_conversation", json!({"conversationId": conv0, "lastSeq": 0})).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let replay = owner_sock.collect("message_received", Duration::from_millis(1500)).await;
    // The deleted one is replayed in its place as `isDeleted`, without content (no gap in seq).
    let seqs: Vec<i64> = replay.iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "every seq, in order");
    assert_eq!(replay.iter().filter(|m| m["isDeleted"] == true && m["content"] == "").count(), 1);
    let replayed: Vec<String> = replay
        .iter()
        .filter(|m| m["isDeleted"] != true)
        .filter_map(|m| m["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(replayed, expected, "rejoin replays the legacy history in order");
    let ack = cust_sock.call("join_conversation", json!(conv0)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let sent = cust_sock.call("send_message", json!({"conversationId": conv0, "message": "hi from omnibiz"})).await;
    assert_eq!(sent["ok"], true, "{sent}");
    let got = owner_sock.expect("message_received").await;
    assert_eq!(got["content"], "hi from omnibiz");
    let our_seq = got["seq"].as_i64().expect("seq");
    assert!(our_seq > *first.values().max().expect("max"), "after the legacy history");
    // A reaction adds a field the seed's schema does not know: its models must still accept the document.
    let ack = owner_sock.call("add_reaction", json!({"messageId": got["id"], "emoji": "👍"})).await;
    assert_eq!(ack["ok"], true, "{ack}");

    // What we wrote, read back through the seed's models: valid and shown right.
    let after = node.run(&["verify", &conv0]).await;
    assert_eq!(after["errors"], json!([]), "Mongoose validation passes on everything we wrote: {after}");
    assert_eq!(after["conversation"]["lastMessage"], "hi from omnibiz");
    assert_eq!(after["conversation"]["lastMessageSender"], cust0.as_str());
    let unread_before = before["conversation"]["unreadCount"]["businessOwner"].as_i64().expect("n");
    assert_eq!(after["conversation"]["unreadCount"]["businessOwner"], unread_before + 1);
    let ours = after["messages"].as_array().expect("m").iter().find(|m| m["content"] == "hi from omnibiz").cloned();
    let ours = ours.expect("our message is visible to the Node service");
    assert_eq!(ours["senderModel"], "Customer");
    assert_eq!(ours["senderRole"], "customer");
    assert_eq!(ours["isDeleted"], false);
    assert!(ours["createdAt"].is_string(), "{ours}");

    // Reading through us: the seed's readBy and status, unread reset.
    let id = got["id"].as_str().expect("id");
    post(&api, &format!("/api/messages/{id}/read"), &owner_tok, json!({})).await;
    let read = node.run(&["verify", &conv0]).await;
    let ours = read["messages"].as_array().expect("m").iter().find(|m| m["id"] == id).cloned().expect("ours");
    assert_eq!(ours["status"], "read");
    assert_eq!(ours["readBy"], json!([owner]), "{ours}");
    assert_eq!(read["conversation"]["unreadCount"]["businessOwner"], 0);
    assert_eq!(read["errors"], json!([]), "{read}");

    // The Node service writes while we run: adopted, delivered live, served.
    let written = node.run(&["send", &conv0, "owner", "from the node service"]).await;
    let live = cust_sock.try_expect("message_received", Duration::from_secs(5)).await;
    let live = live.expect("a message the Node service stored reaches our socket live");
    assert_eq!(live["content"], "from the node service");
    assert_eq!(live["id"], written["id"]);
    assert_eq!(live["seq"], our_seq + 1, "numbered next");
    let page = get(&api, &format!("/api/messages/conversations/{conv0}?after={our_seq}"), &cust_tok).await;
    assert_eq!(page["messages"][0]["content"], "from the node service", "served by REST: {page}");
    let mut again = SioClient::connect(&gw, Some(&cust_tok)).await.expect("reconnect");
    let ack = again.call("join_conversation", json!({"conversationId": conv0, "lastSeq": our_seq})).await;
    assert_eq!(ack["ok"], true);
    assert_eq!(again.expect("message_received").await["content"], "from the node service", "replayed on rejoin");

    // Teams and groups on the Node service's database: a member's message, an
    // internal note and a group are documents its models still accept.
    let agent = omnibiz_store::fixtures::owner("Legacy Agent");
    omnibiz_store::AccountStore::insert_user(&mongo, &agent).await.expect("insert the agent");
    let agent_tok = owner_token(&agent.id.to_hex());
    let added =
        post(&api, "/api/team/members", &owner_tok, json!({"userId": agent.id.to_hex(), "role": "agent"})).await;
    assert_eq!(added["success"], true, "{added}");
    let sent =
        post(&api, "/api/messages/send", &agent_tok, json!({"conversationId": conv0, "content": "an agent here"}))
            .await;
    assert_eq!(sent["message"]["senderTeamRole"], "agent", "{sent}");
    let note = json!({"conversationId": conv0, "content": "a note", "isPrivate": true});
    assert_eq!(post(&api, "/api/messages/send", &agent_tok, note).await["success"], true);
    let cust1 = seeded["conversations"][1]["customer"].as_str().expect("customer").to_owned();
    let group =
        post(&api, "/api/groups", &owner_tok, json!({"title": "Legacy group", "customerIds": [cust0, cust1]})).await;
    let gid = group["conversation"]["id"].as_str().expect("group id").to_owned();
    let hello = post(
        &api,
        "/api/messages/send",
        &customer_token(&cust1),
        json!({"conversationId": gid, "content": "hi group"}),
    )
    .await;
    assert_eq!(hello["success"], true, "{hello}");
    let seen = node.run(&["verify", &conv0]).await;
    assert_eq!(seen["errors"], json!([]), "the seed's models accept teams' and groups' documents: {seen}");
    let by_agent = seen["messages"].as_array().expect("m").iter().find(|m| m["content"] == "an agent here").cloned();
    let by_agent = by_agent.expect("the agent's message");
    assert_eq!(
        (by_agent["senderModel"].as_str(), by_agent["senderRole"].as_str()),
        (Some("User"), Some("business_owner"))
    );
    assert_eq!(seen["conversation"]["lastMessage"], "an agent here", "the note is not the preview");

    mongo.drop_database().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_api_pods_each_node_message_is_adopted_once() {
    let db = format!("omnibiz_adopt_{}", bson::oid::ObjectId::new());
    let node = NodeService::new(&db);
    let seeded = node.run(&["seed"]).await;
    let conv = seeded["conversations"][1]["id"].as_str().expect("conv").to_owned();
    let customer = seeded["conversations"][1]["customer"].as_str().expect("customer").to_owned();
    migrate(&db, &[]).await;
    let fast = [("OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS", "100")];
    let (mut api_a, a) = omnibiz_process("api", &db, &fast).await;
    let (_api_b, b) = omnibiz_process("api", &db, &fast).await;
    let (_gw, gw) = omnibiz_process("gateway", &db, &[]).await;
    for base in [&a, &b, &gw] {
        assert!(eventually(100, Duration::from_millis(100), || async { readyz(base).await.0 == 200 }).await);
    }
    let mut sock = SioClient::connect(&gw, Some(&customer_token(&customer))).await.expect("connect");
    let ack = sock.call("join_conversation", json!(conv)).await;
    let start_seq = ack["lastSeq"].as_i64().expect("lastSeq");
    let mongo = MongoStore::connect(&mongo_uri(), Some(&db)).await.expect("connect");

    let mut contents = Vec::new();
    let mut seen = Vec::new();
    let burst = node.run(&["burst", &conv, "owner", "15", "burst"]).await;
    let ids: HashSet<String> =
        burst["ids"].as_array().expect("ids").iter().filter_map(|i| i.as_str().map(str::to_owned)).collect();
    for _ in 0..15 {
        let m = sock.try_expect("message_received", Duration::from_secs(5)).await.expect("delivered live");
        seen.push(m["seq"].as_i64().expect("seq"));
        contents.push(m["content"].as_str().expect("content").to_owned());
    }
    // The lease holder dies; the other pod takes over.
    api_a.kill().await.expect("kill api a");
    node.run(&["burst", &conv, "owner", "5", "after failover"]).await;
    for _ in 0..5 {
        let m = sock.try_expect("message_received", Duration::from_secs(12)).await.expect("delivered after failover");
        seen.push(m["seq"].as_i64().expect("seq"));
        contents.push(m["content"].as_str().expect("content").to_owned());
    }
    assert!(sock.try_expect("message_received", Duration::from_secs(1)).await.is_none(), "nothing twice");
    let expected: Vec<String> =
        (0..15).map(|i| format!("burst {i}")).chain((0..5).map(|i| format!("after failover {i}"))).collect();
    assert_eq!(contents, expected, "each once, in the order the Node service stored them");
    assert!(seen.windows(2).all(|w| w[0] < w[1]) && seen[0] > start_seq, "strictly increasing seq: {seen:?}");
    let numbered = seqs(&mongo).await;
    let burst_seqs: HashSet<i64> = ids.iter().map(|i| numbered[i]).collect();
    assert_eq!(burst_seqs.len(), 15, "one seq per message");
    mongo.drop_database().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_that_cannot_be_built_is_named_and_migrate_says_what_blocks_it() {
    let db = format!("omnibiz_blocked_{}", bson::oid::ObjectId::new());
    let mongo = MongoStore::connect(&mongo_uri(), Some(&db)).await.expect("connect");
    let database = mongo.database();
    // Two conversations for one owner/customer pair (two racing "start
    // conversation" requests in the Node service), and the full unique seq
    // index an earlier OmniBiz release built.
    let (owner, customer) = (bson::oid::ObjectId::new(), bson::oid::ObjectId::new());
    let convs = database.collection::<Document>("conversations");
    let twin = bson::oid::ObjectId::new();
    for id in [bson::oid::ObjectId::new(), twin] {
        let now = bson::DateTime::now();
        convs
            .insert_one(
                doc! {"_id": id, "businessOwnerId": owner, "customerId": customer, "createdAt": now, "updatedAt": now},
            )
            .await
            .expect("insert");
    }
    // A conversation our first release wrote: `lastMessage` a plain string.
    let first_release = bson::oid::ObjectId::new();
    let at = bson::DateTime::now();
    convs
        .insert_one(doc! {
            "_id": first_release, "businessOwnerId": owner, "customerId": bson::oid::ObjectId::new(),
            "lastMessage": "from our first release", "lastMessageTime": at, "lastSeq": 0_i64,
            "activityAt": at, "createdAt": at, "updatedAt": at,
        })
        .await
        .expect("insert");
    let messages = database.collection::<Document>("messages");
    let old = mongodb::IndexModel::builder()
        .keys(doc! {"conversationId": 1, "seq": 1})
        .options(mongodb::options::IndexOptions::builder().unique(true).build())
        .build();
    messages.create_index(old).await.expect("old index");

    let (_api, api) = omnibiz_process("api", &db, &[]).await;
    unready_saying(&api, &["businessOwnerId_1_customerId_1", "violate"]).await;

    let out = migrate(&db, &["--dry-run"]).await;
    assert!(out.contains("BLOCKER: conversations") && out.contains(&twin.to_hex()), "{out}");
    assert!(out.contains("replace index conversationId_1_seq_1 on messages"), "{out}");
    let refused = migrate_cmd(&db, &[]).output().await.expect("migrate");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "migrate refuses while duplicates exist");
    assert!(said.contains("nothing was changed") && said.contains(&twin.to_hex()), "{said}");

    convs.delete_one(doc! {"_id": twin}).await.expect("remove the duplicate");
    let out = migrate(&db, &[]).await;
    assert!(out.contains("index: did replace index conversationId_1_seq_1 on messages"), "{out}");
    let mut cursor = messages.list_indexes().await.expect("indexes");
    let mut partial = false;
    while let Some(ix) = cursor.try_next().await.expect("index") {
        if ix.options.as_ref().and_then(|o| o.name.as_deref()) == Some("conversationId_1_seq_1") {
            partial = ix.options.as_ref().is_some_and(|o| o.partial_filter_expression.is_some());
        }
    }
    assert!(partial, "the seq index is partial now, so Node documents cannot collide in it");
    let converted = convs.find_one(doc! {"_id": first_release}).await.expect("read").expect("found");
    let preview = converted.get_document("lastMessage").expect("the seed's sub-document now");
    assert_eq!(preview.get_str("content"), Ok("from our first release"));
    assert_eq!(preview.get_datetime("timestamp"), Ok(&at));
    assert!(eventually(100, Duration::from_millis(100), || async { readyz(&api).await.0 == 200 }).await);
    mongo.drop_database().await.expect("drop");
}
