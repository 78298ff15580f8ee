//! One contract suite, run against every `Store` implementation: embedded
//! SQLite (a temporary file) and MongoDB (`MONGODB_URI`, a fresh database per
//! test; `scripts/test.sh` starts a real server).

use std::sync::Arc;

use chrono::{Duration, Utc};
use omnibiz_domain::EndpointId;
use omnibiz_domain::events;
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, HookEvent, OutboxEvent};
use omnibiz_domain::{
    Attachment, ConversationId, ConversationStatus, Customer, CustomerId, MessageStatus, Priority, Side, User, UserId,
};
use omnibiz_store::fixtures;
use omnibiz_store::mongo::MongoStore;
use omnibiz_store::sqlite::SqliteStore;
use omnibiz_store::{
    Appended, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery, NewMessage, Participants, Party, Store,
};

type Dyn = Arc<dyn Store>;

/// Keeps a backend's resources alive for the test and cleans up afterwards.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Mongo(MongoStore),
}

impl Guard {
    async fn finish(self) {
        if let Guard::Mongo(m) = self {
            m.drop_database().await.expect("dropping the test database");
        }
    }
}

fn sqlite() -> (Dyn, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("test.db")).expect("open sqlite");
    (Arc::new(store), Guard::Sqlite(dir))
}

async fn mongo() -> (Dyn, Guard) {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run scripts/test.sh, which starts a MongoDB-compatible server");
    let db = format!("omnibiz_contract_{}", bson::oid::ObjectId::new());
    let store = MongoStore::connect(&uri, Some(&db)).await.expect("connect to MongoDB");
    store.ensure_indexes().await.expect("create indexes");
    // Index creation must be idempotent.
    store.ensure_indexes().await.expect("create indexes again");
    (Arc::new(store.clone()), Guard::Mongo(store))
}

fn owner() -> User {
    User { email: "ada@shop.example".into(), business_name: Some("Ada's Shop".into()), ..fixtures::owner("Ada Owner") }
}

fn customer(owner: UserId, name: &str) -> Customer {
    Customer {
        phone: Some("+1 555 0199".into()),
        total_orders: 3,
        total_spent: 129.5,
        last_order_date: Some(Utc::now() - Duration::days(2)),
        last_login: Some(Utc::now() - Duration::hours(5)),
        ..fixtures::customer(owner, name)
    }
}

fn new_message(conv: omnibiz_domain::ConversationId, from: Side, sender: &str, text: &str) -> NewMessage {
    fixtures::message(conv, from, sender, text)
}

async fn setup(store: &Dyn) -> (User, Customer) {
    let o = owner();
    store.insert_user(&o).await.expect("insert user");
    let c = customer(o.id, "Carl Customer");
    store.insert_customers(std::slice::from_ref(&c)).await.expect("insert customer");
    (o, c)
}

async fn users_and_customers_round_trip(store: Dyn) {
    let (o, c) = setup(&store).await;
    assert_eq!(store.get_user(o.id).await.expect("get user"), Some(o.clone()));
    let got = store.get_customer(c.id).await.expect("get customer").expect("customer exists");
    assert_eq!(got.name, c.name);
    assert_eq!(got.invited_by, o.id);
    assert_eq!(got.total_orders, 3);
    assert!((got.total_spent - 129.5).abs() < 1e-9);
    assert!(store.get_user(UserId::new()).await.expect("get").is_none());
    assert_eq!(store.customers_by_ids(&[c.id, CustomerId::new()]).await.expect("by ids").len(), 1);
}

async fn customer_list_pages_and_searches(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("insert user");
    let names = ["Alice Blue", "Bob Green", "Carol Blue", "Dan (Red)", "Eve 100%"];
    let cs: Vec<Customer> = names.iter().map(|n| customer(o.id, n)).collect();
    store.insert_customers(&cs).await.expect("insert");
    // Someone else's customer never shows up.
    store.insert_customers(&[customer(UserId::new(), "Alice Other")]).await.expect("insert");

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_customers(&CustomerQuery { owner: o.id, q: None, before, limit: 2 }).await.expect("list");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = page.last().map(|c| c.id);
        seen.extend(page.into_iter().map(|c| c.name));
    }
    assert_eq!(seen.len(), 5, "every customer exactly once: {seen:?}");
    let hit = |q: &str| {
        let store = store.clone();
        let q = CustomerQuery { owner: o.id, q: Some(q.into()), before: None, limit: 50 };
        async move { store.list_customers(&q).await.expect("search").len() }
    };
    assert_eq!(hit("blue").await, 2, "case-insensitive substring");
    assert_eq!(hit("(red)").await, 1, "regex characters are literal");
    assert_eq!(hit("100%").await, 1, "LIKE wildcards are literal");
    assert_eq!(hit("mail.example").await, 5, "email matches");
    assert_eq!(hit("zzz").await, 0);
}

async fn create_or_get_is_idempotent_under_concurrency(store: Dyn) {
    let (o, c) = setup(&store).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let who = Participants::of(&o, &c);
        tasks.push(tokio::spawn(async move { store.get_or_create_conversation(&who, Utc::now()).await }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (conv, was_created) = t.await.expect("join").expect("create-or-get");
        ids.insert(conv.id);
        created += usize::from(was_created);
    }
    assert_eq!(ids.len(), 1, "20 parallel creates give one conversation");
    assert_eq!(created, 1, "exactly one call reports creating it");
    let all = store
        .list_conversations(&ConversationQuery { party: Party::Owner(o.id), customers: None, before: None, limit: 50 })
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, ConversationStatus::Active);
    assert_eq!(all[0].last_seq, 0);
}

async fn parallel_appends_get_distinct_increasing_seqs(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        let m = new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("message {i}"));
        tasks.push(tokio::spawn(async move { store.append_message(m).await.map(|a| a.expect("taken")) }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.expect("join").expect("append") {
            Appended::Created(m) => seqs.push(m.seq),
            Appended::Existing(_) => panic!("no client id, so nothing can be a duplicate"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=n).collect::<Vec<i64>>(), "distinct and gap-free");
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.last_seq, n);
    assert_eq!(conv.unread.owner, n, "recipient's unread counts every message");
    assert_eq!(conv.unread.customer, 0, "the sender's own messages are not unread for them");
    let last = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 1 })
        .await
        .expect("last");
    assert_eq!(last[0].seq, n);
    assert_eq!(conv.last_message.as_deref(), Some(last[0].content.as_str()), "lastMessage is the highest seq");
    assert_eq!(conv.last_message_seq, n);
}

async fn client_message_id_stores_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let mut m = new_message(conv.id, Side::Owner, &o.id.to_hex(), "hello");
    m.client_message_id = Some("client-1".into());
    m.attachments = vec![Attachment {
        id: None,
        url: "https://cdn.example/a.png".into(),
        name: "a.png".into(),
        mime_type: "image/png".into(),
        size: 42,
        thumbnail_url: None,
    }];
    let first = store.append_message(m.clone()).await.expect("first").expect("taken");
    let Appended::Created(first) = first else { panic!("first send creates") };
    assert_eq!(first.attachments.len(), 1);
    let retry = store.append_message(m.clone()).await.expect("retry").expect("taken");
    assert_eq!(retry, Appended::Existing(first.clone()));

    // Concurrent retries of another id: still one message.
    m.client_message_id = Some("client-2".into());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, m) = (store.clone(), m.clone());
        tasks.push(tokio::spawn(async move { store.append_message(m).await.map(|a| a.expect("taken")) }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("join").expect("append").into_message().id);
    }
    assert_eq!(ids.len(), 1, "one stored message for one clientMessageId");
    let all = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 100 })
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.unread.customer, 2, "retries do not inflate unread");
}

async fn append_checks_the_sender_and_a_retry_leaves_no_trace(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let me = c.id.to_hex();
    let refused = |conversation, side, sender: String| {
        let store = store.clone();
        async move { store.append_message(new_message(conversation, side, &sender, "x")).await.expect("append") }
    };
    // A stranger, a participant claiming the other side, a conversation that does not exist.
    assert!(refused(conv.id, Side::Customer, CustomerId::new().to_hex()).await.is_none(), "a stranger");
    assert!(refused(conv.id, Side::Owner, me.clone()).await.is_none(), "the customer posing as the owner");
    assert!(refused(ConversationId::new(), Side::Customer, me.clone()).await.is_none(), "no such conversation");
    let block = |status| ConversationPatch { status: Some(status), ..Default::default() };
    store.update_conversation(conv.id, &block(ConversationStatus::Blocked), Utc::now()).await.expect("block");
    assert!(refused(conv.id, Side::Customer, me.clone()).await.is_none(), "a blocked conversation");
    assert!(refused(conv.id, Side::Owner, o.id.to_hex()).await.is_none(), "blocked for both sides");
    store.update_conversation(conv.id, &block(ConversationStatus::Active), Utc::now()).await.expect("unblock");
    let untouched = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(
        (untouched.last_seq, untouched.unread.owner, untouched.last_message),
        (0, 0, None),
        "refusals change nothing"
    );

    // A retry after another message: the other stays the last one, no seq is used.
    let append = |m: NewMessage| {
        let store = store.clone();
        async move { store.append_message(m).await.expect("append").expect("taken") }
    };
    let mut first = new_message(conv.id, Side::Customer, &me, "first");
    first.client_message_id = Some("retry-1".into());
    assert_eq!(append(first.clone()).await.message().seq, 1);
    assert_eq!(append(new_message(conv.id, Side::Customer, &me, "second")).await.message().seq, 2);
    let before = store.get_conversation(conv.id).await.expect("get").expect("exists");
    let retry = append(first.clone()).await;
    assert!(matches!(&retry, Appended::Existing(m) if m.seq == 1 && m.content == "first"), "{retry:?}");
    let after = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(after.last_seq, 2, "the retry used no seq");
    assert_eq!(after.last_message.as_deref(), Some("second"), "the preview is still the newest message");
    assert_eq!(after.last_message_time, before.last_message_time);
    assert_eq!(after.activity_time(), before.activity_time(), "a retry does not move the conversation up");
    assert_eq!(after.unread.owner, 2, "nor count as unread");
    // A retry right after its own send; the next message follows without a gap.
    let mut third = new_message(conv.id, Side::Customer, &me, "third");
    third.client_message_id = Some("retry-2".into());
    assert_eq!(append(third.clone()).await.message().seq, 3);
    assert!(matches!(append(third).await, Appended::Existing(m) if m.seq == 3));
    assert_eq!(append(new_message(conv.id, Side::Customer, &me, "fourth")).await.message().seq, 4, "no gap");
    let seqs: Vec<i64> = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 10 })
        .await
        .expect("list")
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let end = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!((end.last_seq, end.unread.owner, end.last_message.as_deref()), (4, 4, Some("fourth")));
}

/// New messages and retries of stored ones at the same moment (MongoDB then
/// writes them in shared `insertMany` batches): each new one is stored with
/// a seq of its own, each retry gets the stored message, and a refused
/// document does not take the others of its batch down with it.
async fn new_messages_and_retries_together_each_get_their_own_outcome(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let me = c.id.to_hex();
    let mut stored = Vec::new();
    for i in 0..4 {
        let mut m = new_message(conv.id, Side::Customer, &me, &format!("stored {i}"));
        m.client_message_id = Some(format!("stored-{i}"));
        store.append_message(m.clone()).await.expect("append").expect("taken");
        stored.push(m);
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let m = if i % 4 == 0 {
            stored[(i / 4) % stored.len()].clone()
        } else {
            let mut m = new_message(conv.id, Side::Customer, &me, &format!("new {i}"));
            m.client_message_id = Some(format!("new-{i}"));
            m
        };
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.append_message(m).await.expect("append").expect("taken") }));
    }
    let (mut created, mut existing) = (Vec::new(), 0);
    for t in tasks {
        match t.await.expect("join") {
            Appended::Created(m) => created.push(m.seq),
            Appended::Existing(m) => {
                assert!(m.content.starts_with("stored "), "a retry gets the stored message: {m:?}");
                existing += 1;
            }
        }
    }
    created.sort_unstable();
    created.dedup();
    assert_eq!(existing, 10, "every retry found its message");
    assert_eq!(created.len(), 30, "every new message stored, each with a seq of its own");
    assert!(created[0] > 4, "after the stored ones: {created:?}");
    let all = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 100 })
        .await
        .expect("list");
    assert_eq!(all.len(), 34, "nothing stored twice, nothing lost");
    let end = store.get_conversation(conv.id).await.expect("get").expect("exists");
    // A retry gives its seq back only when no other send took one since: under
    // this much concurrency some are skipped (the gateways' gap wait covers it).
    assert!(end.last_seq >= 34 && end.last_seq <= 44, "{}", end.last_seq);
    assert_eq!(end.unread.owner, 34, "retries add no unread");
}

async fn message_pages_by_seq(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    for i in 1..=10 {
        store
            .append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), &format!("m{i}")))
            .await
            .expect("append")
            .expect("taken");
    }
    let q = |before, after, limit| MessageQuery { conversation_id: conv.id, before, after, limit };
    let seqs = |v: Vec<omnibiz_domain::Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.list_messages(&q(None, None, 3)).await.expect("latest")), vec![8, 9, 10]);
    assert_eq!(seqs(store.list_messages(&q(Some(8), None, 3)).await.expect("before")), vec![5, 6, 7]);
    assert_eq!(seqs(store.list_messages(&q(None, Some(7), 100)).await.expect("after")), vec![8, 9, 10]);
    assert_eq!(seqs(store.list_messages(&q(None, Some(2), 2)).await.expect("after")), vec![3, 4]);
    assert_eq!(seqs(store.list_messages(&q(Some(6), Some(3), 10)).await.expect("between")), vec![4, 5]);
    assert!(store.list_messages(&q(None, Some(10), 10)).await.expect("none").is_empty());
}

async fn mark_read_resets_unread_and_never_moves_back(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    for i in 1..=5 {
        store
            .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("c{i}")))
            .await
            .expect("a")
            .expect("taken");
    }
    store
        .append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "o1"))
        .await
        .expect("append")
        .expect("taken");
    let r = store.mark_read(conv.id, Side::Owner, 3).await.expect("read");
    assert_eq!((r.read_seq, r.unread), (3, 2));
    let r = store.mark_read(conv.id, Side::Owner, 1).await.expect("read");
    assert_eq!((r.read_seq, r.unread), (3, 2), "never backwards");
    let msgs = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 10 })
        .await
        .expect("list");
    let status: Vec<_> = msgs.iter().map(|m| (m.seq, m.status)).collect();
    assert_eq!(status[..3], [(1, MessageStatus::Read), (2, MessageStatus::Read), (3, MessageStatus::Read)]);
    assert_eq!(status[3].1, MessageStatus::Sent);
    let r = store.mark_read(conv.id, Side::Owner, 6).await.expect("read all");
    assert_eq!((r.read_seq, r.unread), (6, 0));
    let own = msgs.iter().find(|m| m.sender_side == Side::Owner).expect("owner message");
    let own = store.get_message(own.id).await.expect("get").expect("exists");
    assert_eq!(own.status, MessageStatus::Sent, "the reader's own messages are untouched");
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.unread.owner, 0);
    assert_eq!(conv.unread.customer, 1);
    assert!(store.mark_delivered(own.id).await.expect("deliver"));
    assert!(!store.mark_delivered(own.id).await.expect("again"), "only sent → delivered");
}

async fn conversation_list_orders_by_activity_with_cursor(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("user");
    let cs: Vec<Customer> = (0..5).map(|i| customer(o.id, &format!("Cust {i}"))).collect();
    store.insert_customers(&cs).await.expect("customers");
    let t0 = Utc::now() - Duration::hours(1);
    let mut convs = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let (conv, _) = store
            .get_or_create_conversation(&Participants::of(&o, c), t0 + Duration::seconds(i as i64))
            .await
            .expect("c");
        convs.push(conv);
    }
    // A message makes the oldest conversation the most recent.
    store
        .append_message(new_message(convs[0].id, Side::Customer, &cs[0].id.to_hex(), "ping"))
        .await
        .expect("append")
        .expect("taken");
    let q = |before, customers| ConversationQuery { party: Party::Owner(o.id), customers, before, limit: 2 };
    let mut order = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_conversations(&q(before, None)).await.expect("page");
        let Some(last) = page.last() else { break };
        before = Some(omnibiz_store::ActivityCursor { at: last.activity_time(), id: last.id });
        order.extend(page.iter().map(|c| c.id));
    }
    let expected: Vec<_> = [0, 4, 3, 2, 1].iter().map(|&i| convs[i].id).collect();
    assert_eq!(order, expected);
    let only = store.list_conversations(&q(None, Some(vec![cs[2].id, cs[3].id]))).await.expect("filtered");
    assert_eq!(only.len(), 2);
    assert!(store.list_conversations(&q(None, Some(vec![]))).await.expect("empty filter").is_empty());
    let mine = store
        .list_conversations(&ConversationQuery {
            party: Party::Customer(cs[1].id),
            customers: None,
            before: None,
            limit: 9,
        })
        .await
        .expect("customer list");
    assert_eq!(mine.len(), 1);
    let with = store.conversations_with(o.id, &[cs[0].id, cs[1].id, CustomerId::new()]).await.expect("with");
    assert_eq!(with.len(), 2);
}

async fn conversation_patch(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let patch = ConversationPatch {
        status: Some(ConversationStatus::Archived),
        tags: Some(vec!["vip".into(), "refund".into()]),
        priority: Some(Priority::Urgent),
    };
    let got = store.update_conversation(conv.id, &patch, Utc::now()).await.expect("update").expect("exists");
    assert_eq!(got.status, ConversationStatus::Archived);
    assert_eq!(got.tags, vec!["vip".to_string(), "refund".to_string()]);
    assert_eq!(got.priority, Priority::Urgent);
    let got = store
        .update_conversation(
            conv.id,
            &ConversationPatch { priority: Some(Priority::Low), ..Default::default() },
            Utc::now(),
        )
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(got.status, ConversationStatus::Archived, "untouched fields stay");
    assert_eq!(got.priority, Priority::Low);
    let missing = omnibiz_domain::ConversationId::new();
    assert!(store.update_conversation(missing, &patch, Utc::now()).await.expect("update").is_none());
}

/// Every reportable change records its outbox event with it; fan-out stores
/// deliveries once (idempotent) and clears the event; a no-op read records nothing.
async fn webhook_outbox_records_each_change_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let now = Utc::now();
    let (conv, created) = store.get_or_create_conversation(&Participants::of(&o, &c), now).await.expect("create");
    assert!(created);
    let (_, again) = store.get_or_create_conversation(&Participants::of(&o, &c), now).await.expect("get");
    assert!(!again, "an existing conversation records no second conversation.created");
    let m = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "hi"))
        .await
        .expect("append")
        .expect("taken");
    let patch = ConversationPatch { priority: Some(Priority::High), ..Default::default() };
    store.update_conversation(conv.id, &patch, Utc::now()).await.expect("update");
    store.mark_read(conv.id, Side::Owner, 1).await.expect("read");
    store.mark_read(conv.id, Side::Owner, 1).await.expect("read again: no advance");
    let events = store.pending_events(100).await.expect("pending");
    let kinds: Vec<HookEvent> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 4, "{events:#?}");
    for k in [
        HookEvent::ConversationCreated,
        HookEvent::MessageCreated,
        HookEvent::ConversationUpdated,
        HookEvent::MessageRead,
    ] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), 1, "{k:?} once: {events:#?}");
    }
    let created_evt = events.iter().find(|e| e.kind == HookEvent::MessageCreated).expect("message.created");
    assert_eq!(created_evt.id, format!("msg_{}", m.message().id.to_hex()));
    assert_eq!(created_evt.data["content"], "hi");
    let read = events.iter().find(|e| e.kind == HookEvent::MessageRead).expect("message.read");
    assert_eq!(read.data["upToSeq"], 1);
    let upd = events.iter().find(|e| e.kind == HookEvent::ConversationUpdated).expect("updated");
    assert_eq!(upd.data["priority"], "high");

    // Fan-out: deliveries stored once even when done twice; the event is gone after.
    let endpoint = EndpointId::new();
    let delivery = |e: &OutboxEvent| Delivery {
        id: format!("{}.{}", e.id, endpoint.to_hex()),
        endpoint,
        owner: o.id,
        event_id: e.id.clone(),
        kind: e.kind,
        conversation: conv.id,
        body: "{}".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_at: now,
        created_at: now,
        updated_at: now,
        log: Vec::new(),
        unread_check: None,
    };
    for e in &events {
        let d = [delivery(e)];
        store.fan_out(e, &d).await.expect("fan out");
        store.fan_out(e, &d).await.expect("fan out again (a pod died in between)");
    }
    assert!(store.pending_events(100).await.expect("pending").is_empty());
    let listed = store.list_deliveries(endpoint, None, 100).await.expect("list");
    assert_eq!(listed.len(), 4);

    // Leases: two claimers never get the same delivery; the holder alone finishes it.
    let later = Utc::now() + Duration::seconds(30);
    let (a, b) = tokio::join!(
        store.claim_deliveries("a", Utc::now(), later, 3),
        store.claim_deliveries("b", Utc::now(), later, 3)
    );
    let (a, b) = (a.expect("claim a"), b.expect("claim b"));
    assert_eq!(a.len() + b.len(), 4, "every due delivery claimed once");
    assert!(a.iter().all(|x| b.iter().all(|y| x.id != y.id)), "no delivery claimed twice");
    assert!(store.claim_deliveries("c", Utc::now(), later, 10).await.expect("claim c").is_empty(), "leased");
    let mut d = a.first().or(b.first()).expect("one").clone();
    let holder = if a.iter().any(|x| x.id == d.id) { "a" } else { "b" };
    d.status = DeliveryStatus::Succeeded;
    d.attempts = 1;
    assert!(!store.finish_delivery(&d, "intruder", Utc::now()).await.expect("finish"), "only the holder finishes");
    assert!(store.finish_delivery(&d, holder, Utc::now()).await.expect("finish"));
    let got = store.get_delivery(&d.id).await.expect("get").expect("exists");
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Succeeded, 1));
    // An expired lease is claimed again.
    let expired = store
        .claim_deliveries("d", Utc::now() + Duration::seconds(31), later + Duration::seconds(60), 10)
        .await
        .expect("claim d");
    assert_eq!(expired.len(), 3, "the unfinished ones, once their lease expired");
}

async fn uploads_are_claimed_once_and_confirmed(store: Dyn) {
    use omnibiz_domain::Upload;
    use omnibiz_domain::UploadId;
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let (o2, c2) = setup(&store).await;
    let (other, _) = store.get_or_create_conversation(&Participants::of(&o2, &c2), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let u = Upload {
        id: UploadId::new(),
        conversation_id: conv.id,
        uploader_id: me.clone(),
        uploader_side: Side::Customer,
        name: "a.png".into(),
        mime_type: "application/octet-stream".into(),
        size: None,
        has_thumbnail: false,
        created_at: Utc::now() - Duration::seconds(5),
        claim: None,
        message_id: None,
        confirmed: false,
    };
    store.insert_upload(&u).await.expect("insert");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_none(), "still being written");
    assert!(store.finish_upload(u.id, "image/png", 1234, true).await.expect("finish"));
    let got = store.get_upload(u.id).await.expect("get").expect("exists");
    assert_eq!((got.mime_type.as_str(), got.size, got.has_thumbnail), ("image/png", Some(1234), true));
    assert!(
        store.claim_upload(u.id, conv.id, &o.id.to_hex(), "k1").await.expect("claim").is_none(),
        "not the uploader"
    );
    assert!(store.claim_upload(u.id, other.id, &me, "k1").await.expect("claim").is_none(), "another conversation");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some());
    assert!(store.claim_upload(u.id, conv.id, &me, "k2").await.expect("claim").is_none(), "claimed by another send");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some(), "the same send, retried");
    // Unconfirmed and old enough: the sweeper's to look at.
    let stale = store.stale_uploads(Utc::now(), 10).await.expect("stale");
    assert_eq!(stale.iter().map(|x| x.id).collect::<Vec<_>>(), vec![u.id]);
    let mut m = new_message(conv.id, Side::Customer, &me, "file");
    m.attachments = vec![Attachment {
        id: Some(u.id.to_hex()),
        url: format!("/api/messages/attachments/{}/content", u.id),
        name: "a.png".into(),
        mime_type: "image/png".into(),
        size: 1234,
        thumbnail_url: None,
    }];
    let stored = store.append_message(m).await.expect("append").expect("taken").into_message();
    assert_eq!(store.message_with_upload(conv.id, u.id).await.expect("find"), Some(stored.id));
    assert_eq!(store.message_with_upload(other.id, u.id).await.expect("find"), None);
    assert_eq!(store.message_with_upload(conv.id, UploadId::new()).await.expect("find"), None);
    store.confirm_uploads(&[u.id], stored.id).await.expect("confirm");
    let got = store.get_upload(u.id).await.expect("get").expect("exists");
    assert!(got.confirmed);
    assert_eq!(got.message_id, Some(stored.id));
    assert!(store.stale_uploads(Utc::now(), 10).await.expect("stale").is_empty(), "confirmed uploads stay");
    assert!(store.claim_upload(u.id, conv.id, &me, "k3").await.expect("claim").is_none(), "attached for good");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some(), "its own send may retry");
    store.unconfirm_uploads(&[u.id]).await.expect("unconfirm");
    assert_eq!(store.stale_uploads(Utc::now(), 10).await.expect("stale").len(), 1);
    assert!(store.stale_uploads(Utc::now() - Duration::minutes(1), 10).await.expect("stale").is_empty(), "too young");
    store.delete_upload(u.id).await.expect("delete");
    assert!(store.get_upload(u.id).await.expect("get").is_none());
}

async fn edit_and_delete_keep_history_honest(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let first = store
        .append_message(new_message(conv.id, Side::Customer, &me, "one"))
        .await
        .expect("a")
        .expect("taken")
        .into_message();
    let last = store
        .append_message(new_message(conv.id, Side::Customer, &me, "two"))
        .await
        .expect("b")
        .expect("taken")
        .into_message();
    let at = Utc::now();
    let edited =
        store.edit_message(first.id, first.conversation_id, "one, edited", at).await.expect("edit").expect("exists");
    assert_eq!(edited.content, "one, edited");
    assert!(edited.edited_at.is_some());
    let reread = store.get_message(first.id).await.expect("get").expect("exists");
    assert_eq!((reread.content.as_str(), reread.edited_at.is_some()), ("one, edited", true));
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some("two"), "editing an older message leaves the preview");
    store.edit_message(last.id, last.conversation_id, "two, edited", at).await.expect("edit").expect("exists");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some("two, edited"));
    assert_eq!(conv_now.unread.owner, 2);

    let deleted =
        store.delete_message(last.id, last.conversation_id, Utc::now()).await.expect("delete").expect("existed");
    assert!(deleted.deleted);
    assert_eq!(deleted.content, "");
    assert!(store.get_message(last.id).await.expect("get").is_none(), "a deleted message is not served by id");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some(omnibiz_store::DELETED_PREVIEW));
    assert_eq!(conv_now.unread.owner, 1, "a deleted unread message stops counting");
    let page = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: Some(0), limit: 10 })
        .await
        .expect("list");
    assert_eq!(page.len(), 2, "history keeps its place");
    assert!(page[1].deleted && page[1].content.is_empty() && page[1].attachments.is_empty());
    assert!(!page[0].deleted);
    assert!(store.delete_message(last.id, last.conversation_id, Utc::now()).await.expect("delete").is_none(), "once");
    assert!(
        store.edit_message(last.id, last.conversation_id, "back", Utc::now()).await.expect("edit").is_none(),
        "no editing a deleted one"
    );
    // Read, then delete: the unread count does not go below what is unread.
    store.mark_read(conv.id, Side::Owner, first.seq).await.expect("read");
    store.delete_message(first.id, first.conversation_id, Utc::now()).await.expect("delete").expect("existed");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.unread.owner, 0);
}

async fn quick_replies_keep_one_shortcut_per_owner(store: Dyn) {
    use omnibiz_domain::{QuickReply, QuickReplyId, Shortcut};
    let (o, _) = setup(&store).await;
    let (o2, _) = setup(&store).await;
    let reply = |owner: UserId, s: &str, content: &str| QuickReply {
        id: QuickReplyId::new(),
        owner,
        shortcut: Shortcut::parse(s).expect("shortcut"),
        content: content.into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let thanks = reply(o.id, "thanks", "Thank you!");
    assert!(store.insert_quick_reply(&thanks).await.expect("insert"));
    assert!(!store.insert_quick_reply(&reply(o.id, "thanks", "dup")).await.expect("insert"), "taken");
    assert!(store.insert_quick_reply(&reply(o2.id, "thanks", "another owner's")).await.expect("insert"));
    let mut hours = reply(o.id, "hours", "9 to 5");
    assert!(store.insert_quick_reply(&hours).await.expect("insert"));
    let listed: Vec<String> =
        store.list_quick_replies(o.id).await.expect("list").iter().map(|r| r.shortcut.as_str().to_owned()).collect();
    assert_eq!(listed, vec!["hours", "thanks"]);
    assert_eq!(store.find_quick_reply(o.id, "thanks").await.expect("find").map(|r| r.id), Some(thanks.id));
    assert!(store.find_quick_reply(o.id, "nope").await.expect("find").is_none());
    hours.shortcut = Shortcut::parse("thanks").expect("shortcut");
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), Some(false), "rename onto a taken shortcut");
    hours.shortcut = Shortcut::parse("open").expect("shortcut");
    hours.content = "10 to 6".into();
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), Some(true));
    assert_eq!(store.get_quick_reply(hours.id).await.expect("get").expect("exists").content, "10 to 6");
    assert!(store.delete_quick_reply(hours.id).await.expect("delete"));
    assert!(!store.delete_quick_reply(hours.id).await.expect("delete"));
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), None, "gone");
}

async fn search_finds_candidates_in_the_partys_conversations(store: Dyn) {
    use omnibiz_domain::search::{SearchQuery, is_match};
    let (o, c) = setup(&store).await;
    let c2 = customer(o.id, "Second Customer");
    store.insert_customers(std::slice::from_ref(&c2)).await.expect("insert");
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let (conv2, _) = store.get_or_create_conversation(&Participants::of(&o, &c2), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let me2 = c2.id.to_hex();
    for (cv, from, text) in [
        (conv.id, &me, "Shipping to Mombasa"),
        (conv.id, &me, "Relationship advice"),
        (conv2.id, &me2, "shipped yesterday"),
    ] {
        store.append_message(new_message(cv, Side::Customer, from, text)).await.expect("append").expect("taken");
    }
    let gone = store
        .append_message(new_message(conv.id, Side::Customer, &me, "ship it"))
        .await
        .expect("a")
        .expect("taken")
        .into_message();
    store.delete_message(gone.id, gone.conversation_id, Utc::now()).await.expect("delete");
    let q = SearchQuery::parse("ship").expect("query");
    let found = |party| {
        let (store, q) = (Arc::clone(&store), q.clone());
        async move {
            let mut v: Vec<String> = store
                .search_messages(party, &q, None, 50)
                .await
                .expect("search")
                .into_iter()
                .filter(|m| is_match(&m.content, &q))
                .map(|m| m.content)
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(found(Party::Owner(o.id)).await, vec!["Shipping to Mombasa", "shipped yesterday"]);
    assert_eq!(found(Party::Customer(c.id)).await, vec!["Shipping to Mombasa"]);
    assert_eq!(found(Party::Customer(c2.id)).await, vec!["shipped yesterday"]);
    assert!(found(Party::Owner(UserId::new())).await.is_empty());
    // Edited content is what is found.
    let all = store.search_messages(Party::Owner(o.id), &q, None, 50).await.expect("search");
    let shipping = all.iter().find(|m| m.content == "Shipping to Mombasa").expect("found");
    store.edit_message(shipping.id, shipping.conversation_id, "Delivery to Nairobi", Utc::now()).await.expect("edit");
    assert_eq!(found(Party::Customer(c.id)).await, Vec::<String>::new());
    let q2 = SearchQuery::parse("nairobi").expect("query");
    assert_eq!(store.search_messages(Party::Customer(c.id), &q2, None, 50).await.expect("search").len(), 1);
}

async fn message_changes_record_their_webhook_events(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let m = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "hi"))
        .await
        .expect("append")
        .expect("taken");
    let m = m.into_message();
    let drain = |store: Dyn| async move {
        let events = store.pending_events(100).await.expect("pending");
        for e in &events {
            store.fan_out(e, &[]).await.expect("fan out");
        }
        events
    };
    drain(Arc::clone(&store)).await;
    store.edit_message(m.id, m.conversation_id, "hi, edited", Utc::now()).await.expect("edit").expect("exists");
    store
        .edit_message(m.id, m.conversation_id, "hi, edited twice", Utc::now() + Duration::milliseconds(5))
        .await
        .expect("edit");
    store
        .delete_message(m.id, m.conversation_id, Utc::now() + Duration::milliseconds(10))
        .await
        .expect("delete")
        .expect("existed");
    assert!(
        store.delete_message(m.id, m.conversation_id, Utc::now()).await.expect("delete").is_none(),
        "a second delete records nothing"
    );
    let events = drain(Arc::clone(&store)).await;
    let got: Vec<(HookEvent, String)> =
        events.iter().map(|e| (e.kind, e.data["content"].as_str().unwrap_or("-").to_owned())).collect();
    assert_eq!(
        got,
        vec![
            (HookEvent::MessageUpdated, "hi, edited".to_owned()),
            (HookEvent::MessageUpdated, "hi, edited twice".to_owned()),
            (HookEvent::MessageDeleted, "-".to_owned()),
        ]
    );
    assert!(events.iter().all(|e| e.data["messageId"] == m.id.to_hex() && e.conversation == conv.id));
    assert!(store.pending_events(100).await.expect("pending").is_empty(), "fanned out once");
}

/// A backlog larger than a pass drains in passes of at most the limit, each
/// event taken once: the outbox's reads need no order to make progress.
async fn an_outbox_backlog_drains_in_passes_each_event_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let mut expected = std::collections::BTreeSet::from([HookEvent::ConversationCreated.as_str().to_owned()]);
    for i in 0..25 {
        let m = store
            .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("m{i}")))
            .await
            .expect("append")
            .expect("taken");
        expected.insert(format!("msg_{}", m.message().id.to_hex()));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut passes = 0;
    loop {
        let events = store.pending_events(10).await.expect("pending");
        if events.is_empty() {
            break;
        }
        passes += 1;
        assert!(events.len() <= 10, "a pass takes at most its limit: {}", events.len());
        for e in &events {
            let key = if e.kind == HookEvent::ConversationCreated { e.kind.as_str().to_owned() } else { e.id.clone() };
            assert!(seen.insert(key), "{} taken twice", e.id);
        }
        let batch: Vec<(OutboxEvent, Vec<Delivery>)> = events.into_iter().map(|e| (e, Vec::new())).collect();
        store.fan_out_all(&batch).await.expect("fan out");
        assert!(passes <= 3, "26 events drain in three passes of 10");
    }
    assert_eq!(passes, 3);
    assert_eq!(seen, expected, "every event once");
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = super::sqlite();
                    super::$case(store).await;
                    guard.finish().await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = super::mongo().await;
                    super::$case(store).await;
                    guard.finish().await;
                }
            )*
        }
    };
}

/// When and from what a `message.created` body is built: at fan-out, from
/// the message as it is then, the same on every store
/// (`omnibiz_domain::events`). A message edited before its event goes out
/// is reported with its new content; one deleted before, as deleted and
/// without the content its sender took back.
async fn message_created_is_built_at_fan_out_from_the_message_as_it_is(store: Dyn) {
    let (o, c) = setup(&store).await;
    let conv = fixtures::conversation(&*store, &o, &c).await.expect("conversation");
    let from = c.id.to_hex();
    let send = |text: &'static str| {
        let store = Arc::clone(&store);
        let msg = new_message(conv.id, Side::Customer, &from, text);
        async move { store.append_message(msg).await.expect("append").expect("sent").into_message() }
    };
    let kept = send("where is my order?").await;
    let edited = send("my adress is 1 Main St").await;
    let deleted = send("my card number is 4111").await;
    let later = Utc::now() + Duration::seconds(1);
    store.edit_message(edited.id, conv.id, "my address is 1 Main St", later).await.expect("edit").expect("edited");
    store.delete_message(deleted.id, conv.id, later).await.expect("delete").expect("deleted");

    let pending = store.pending_events(100).await.expect("outbox");
    let created = |id| {
        let want = events::message_created_id(id);
        pending.iter().find(|e| e.id == want).unwrap_or_else(|| panic!("no message.created for {id}: {pending:?}"))
    };
    let listed = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 10 })
        .await
        .expect("list");
    let as_now = |id| events::message_created_data(listed.iter().find(|m| m.id == id).expect("listed"));
    for m in [&kept, &edited, &deleted] {
        let e = created(m.id);
        assert_eq!(e.kind, HookEvent::MessageCreated);
        assert_eq!(e.conversation, conv.id);
        assert_eq!(e.data, as_now(m.id), "built from the message as it is at fan-out");
    }
    assert_eq!(created(kept.id).data["content"], "where is my order?");
    assert_eq!(created(edited.id).data["content"], "my address is 1 Main St");
    assert!(created(edited.id).data["editedAt"].is_string());
    let gone = &created(deleted.id).data;
    assert_eq!(gone["isDeleted"], true);
    assert_eq!(gone["content"], "", "a deleted message's content never goes out");
    assert!(!gone.to_string().contains("4111"), "{gone}");
}

contract!(
    message_created_is_built_at_fan_out_from_the_message_as_it_is,
    users_and_customers_round_trip,
    customer_list_pages_and_searches,
    create_or_get_is_idempotent_under_concurrency,
    parallel_appends_get_distinct_increasing_seqs,
    client_message_id_stores_once,
    append_checks_the_sender_and_a_retry_leaves_no_trace,
    new_messages_and_retries_together_each_get_their_own_outcome,
    message_pages_by_seq,
    mark_read_resets_unread_and_never_moves_back,
    conversation_list_orders_by_activity_with_cursor,
    conversation_patch,
    webhook_outbox_records_each_change_once,
    uploads_are_claimed_once_and_confirmed,
    edit_and_delete_keep_history_honest,
    quick_replies_keep_one_shortcut_per_owner,
    search_finds_candidates_in_the_partys_conversations,
    message_changes_record_their_webhook_events,
    an_outbox_backlog_drains_in_passes_each_event_once,
);
