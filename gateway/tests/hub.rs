//! The hub on its own (embedded store, in-process bus): a stored message is
//! delivered once per socket however many times it reaches the gateway, in
//! `seq` order however it arrives; a missing seq is fetched from the store,
//! or given up on when it never comes; a resync brings what the bus never
//! delivered.

mod support;

use std::sync::{Arc, Mutex};

use omnibiz_domain::views::MessageView;
use omnibiz_domain::{ConversationId, Side, User};
use omnibiz_gateway::hub::Admission;
use omnibiz_gateway::transport::{CloseReason, Connection, OutEvent, SendError};
use omnibiz_gateway::{GatewayConfig, Hub};
use omnibiz_service::auth::{Principal, Verifier};
use omnibiz_service::bus::local::LocalBus;
use omnibiz_service::bus::{Envelope, EventKind, Published, Topic};
use omnibiz_service::messaging::Messaging;
use omnibiz_service::presence::LocalPresence;
use omnibiz_store::fixtures;
use omnibiz_store::prelude::*;
use omnibiz_store::sqlite::SqliteStore;
use serde_json::{Value, json};

/// A connection that records the frames it is sent.
#[derive(Default)]
struct Recording(Mutex<Vec<String>>);

impl Connection for Recording {
    fn send(&self, event: &OutEvent) -> Result<(), SendError> {
        let text = String::from_utf8(event.frame().to_vec()).expect("utf-8 frame");
        self.0.lock().expect("lock").push(text);
        Ok(())
    }
    fn close(&self, _reason: CloseReason) {}
}

impl Recording {
    /// The `seq`s of the `message_received` events sent so far.
    fn received_seqs(&self) -> Vec<i64> {
        let frames = self.0.lock().expect("lock");
        frames
            .iter()
            .filter_map(|f| serde_json::from_str::<Value>(f.strip_prefix("42")?).ok())
            .filter(|v| v[0] == "message_received")
            .filter_map(|v| v[1]["seq"].as_i64())
            .collect()
    }
}

struct Setup {
    hub: Arc<Hub>,
    store: Arc<SqliteStore>,
    owner: User,
    conv: ConversationId,
    socket: Arc<Recording>,
}

async fn setup(stored_before_join: usize) -> Setup {
    let support::Pair { store, owner, customer, conversation: conv } = support::owner_customer_conversation().await;
    let setup_store = Arc::clone(&store);
    let messaging =
        Messaging::new(store, Arc::new(LocalBus::default()), Arc::new(LocalPresence::default()), "hub-test");
    for i in 0..stored_before_join {
        append(&setup_store, conv.id, &owner, &format!("history {i}")).await;
    }
    let actor = messaging.actor(Principal::Customer { id: customer.id }).await.expect("actor");
    let verifier = Arc::new(Verifier::new(b"hub-test", None).expect("verifier"));
    let hub = Hub::new(messaging, verifier, Arc::new(LocalPresence::default()), GatewayConfig::default());
    let socket = Arc::new(Recording::default());
    let admitted = Admission { actor, expires_at: u64::MAX };
    let id = hub.register(Arc::clone(&socket) as Arc<dyn Connection>, admitted);
    let reply = hub.handle(id, "join_conversation", json!(conv.id.to_hex())).await.expect("reply");
    let ack: serde_json::Value = serde_json::from_str(reply.ack.get()).expect("an ack is JSON");
    assert_eq!(ack["ok"], true, "{ack}");
    Setup { hub, store: setup_store, owner, conv: conv.id, socket }
}

/// Stores a message from the owner without publishing it.
async fn append(store: &SqliteStore, conv: ConversationId, owner: &User, text: &str) -> MessageView {
    let msg = omnibiz_store::NewMessage {
        sender_name: owner.name.clone(),
        ..fixtures::message(conv, Side::Owner, &owner.id.to_hex(), text)
    };
    let appended = store.append_message(msg).await.expect("append").expect("a participant's send is taken");
    MessageView::from(appended.message())
}

fn published(conv: ConversationId, m: &MessageView) -> Published {
    let env = Envelope::new(EventKind::MessageCreated, Some(conv), serde_json::to_value(m).expect("view"));
    Published { topic: Topic::Conversation(conv), envelope: Arc::new(env) }
}

#[tokio::test]
async fn a_stored_message_reaches_a_socket_once_however_often_it_arrives() {
    let s = setup(2).await;
    let m3 = append(&s.store, s.conv, &s.owner, "three").await;
    let m4 = append(&s.store, s.conv, &s.owner, "four").await;
    // Out of order (two API pods), then each again (a resync racing the live event).
    s.hub.dispatch(&published(s.conv, &m4));
    assert_eq!(s.socket.received_seqs(), Vec::<i64>::new(), "4 waits for 3");
    for m in [&m3, &m4, &m3] {
        s.hub.dispatch(&published(s.conv, m));
    }
    assert_eq!(s.socket.received_seqs(), vec![3, 4], "each once, in seq order");
    // History from before the join is not pushed live (it is fetched with lastSeq).
    let old = MessageView { seq: 2, ..m3.clone() };
    s.hub.dispatch(&published(s.conv, &old));
    assert_eq!(s.socket.received_seqs(), vec![3, 4]);
}

#[tokio::test]
async fn a_resync_delivers_what_the_bus_never_did_once() {
    let s = setup(1).await;
    append(&s.store, s.conv, &s.owner, "missed 1").await;
    let live = append(&s.store, s.conv, &s.owner, "arrived live").await;
    append(&s.store, s.conv, &s.owner, "missed 2").await;
    s.hub.dispatch(&published(s.conv, &live));
    assert_eq!(s.socket.received_seqs(), Vec::<i64>::new(), "3 waits for the missed 2");
    s.hub.resync().await;
    assert_eq!(s.socket.received_seqs(), vec![2, 3, 4], "the missed ones and the held one, in order, once");
    s.hub.resync().await;
    assert_eq!(s.socket.received_seqs(), vec![2, 3, 4], "a second pass finds nothing new");
}

/// Polls `cond` for up to ten seconds (a gap is waited for five).
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if cond() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_missing_seq_is_fetched_from_the_store_before_what_follows_goes_out() {
    let s = setup(1).await;
    // Stored, but its publish was lost; the next one arrives live.
    append(&s.store, s.conv, &s.owner, "publish lost").await;
    let next = append(&s.store, s.conv, &s.owner, "arrives live").await;
    s.hub.dispatch(&published(s.conv, &next));
    assert_eq!(s.socket.received_seqs(), Vec::<i64>::new(), "held behind the gap");
    assert!(eventually(|| s.socket.received_seqs() == vec![2, 3]).await, "{:?}", s.socket.received_seqs());
}

#[tokio::test]
async fn a_seq_that_never_comes_is_given_up_on() {
    let s = setup(1).await;
    let two = append(&s.store, s.conv, &s.owner, "two").await;
    s.hub.dispatch(&published(s.conv, &two));
    // Seq 3 was taken by a writer that died before storing it; 4 is real.
    let four = MessageView { seq: 4, content: "four".into(), ..two.clone() };
    s.hub.dispatch(&published(s.conv, &four));
    assert_eq!(s.socket.received_seqs(), vec![2], "4 waits for 3 at first");
    assert!(eventually(|| s.socket.received_seqs() == vec![2, 4]).await, "{:?}", s.socket.received_seqs());
    // A write slower than the wait was stored after all: it goes out late, once, rather than never.
    let late = MessageView { seq: 3, ..two.clone() };
    s.hub.dispatch(&published(s.conv, &late));
    assert_eq!(s.socket.received_seqs(), vec![2, 4, 3], "the late one is delivered, not lost");
    s.hub.dispatch(&published(s.conv, &late));
    s.hub.dispatch(&published(s.conv, &two));
    assert_eq!(s.socket.received_seqs(), vec![2, 4, 3], "and only once");
}

/// A connection that records where each frame's bytes live: frames shared
/// by every receiver come from one encoding.
#[derive(Default)]
struct Pointers(Mutex<Vec<(usize, String)>>);

impl Connection for Pointers {
    fn send(&self, event: &OutEvent) -> Result<(), SendError> {
        let frame = event.frame();
        let text = String::from_utf8(frame.to_vec()).expect("utf-8 frame");
        self.0.lock().expect("lock").push((frame.as_ptr() as usize, text));
        Ok(())
    }
    fn close(&self, _reason: CloseReason) {}
}

/// A group of 50 customers: one stored message reaches each of the 50
/// sockets once, all with the same frame (one encode for the whole room);
/// an internal note reaches none of them.
#[tokio::test]
async fn a_group_of_fifty_gets_one_frame_per_message_and_no_notes() {
    let support::Pair { store, owner, customer, .. } = support::owner_customer_conversation().await;
    let mut members = vec![customer.clone()];
    for i in 1..50 {
        let c = omnibiz_domain::Customer {
            email: format!("m{i}@x.example"),
            ..fixtures::customer(owner.id, &format!("Member {i}"))
        };
        store.insert_customers(std::slice::from_ref(&c)).await.expect("customer");
        members.push(c);
    }
    let ids: Vec<_> = members.iter().map(|c| c.id).collect();
    let group = omnibiz_domain::Conversation::new_group(owner.id, "Fifty".into(), ids, chrono::Utc::now());
    store.create_group(&group).await.expect("group");
    let messaging = Messaging::new(
        Arc::clone(&store) as Arc<dyn omnibiz_store::Store>,
        Arc::new(LocalBus::default()),
        Arc::new(LocalPresence::default()),
        "hub-test",
    );
    let verifier = Arc::new(Verifier::new(b"hub-test", None).expect("verifier"));
    let hub = Hub::new(messaging.clone(), verifier, Arc::new(LocalPresence::default()), GatewayConfig::default());
    let mut sockets = Vec::new();
    for c in &members {
        let actor = messaging.actor(Principal::Customer { id: c.id }).await.expect("actor");
        let socket = Arc::new(Pointers::default());
        let id = hub.register(Arc::clone(&socket) as Arc<dyn Connection>, Admission { actor, expires_at: u64::MAX });
        let reply = hub.handle(id, "join_conversation", json!(group.id.to_hex())).await.expect("reply");
        let ack: Value = serde_json::from_str(reply.ack.get()).expect("json");
        assert_eq!(ack["ok"], true, "{ack}");
        sockets.push(socket);
    }
    let m = append(&store, group.id, &owner, "Pick-up at five").await;
    hub.dispatch(&published(group.id, &m));
    let mut note = fixtures::note(group.id, owner.id, omnibiz_domain::UserId::new(), "they ordered twice");
    note.acting_for = None;
    note.sender_id = owner.id.to_hex();
    let note = store.append_message(note).await.expect("append").expect("taken");
    hub.dispatch(&published(group.id, &MessageView::from(note.message())));

    let mut pointers = std::collections::HashSet::new();
    for s in &sockets {
        let frames = s.0.lock().expect("lock");
        let got: Vec<&(usize, String)> = frames.iter().filter(|(_, f)| f.contains("message_received")).collect();
        assert_eq!(got.len(), 1, "one delivery each, and not the note: {got:?}");
        assert!(got[0].1.contains("Pick-up at five"));
        pointers.insert(got[0].0);
    }
    assert_eq!(pointers.len(), 1, "all 50 sockets were sent the same encoded frame");
}
