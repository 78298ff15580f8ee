//! Micro-benchmarks of the fan-out hot path: what a stored send encodes on
//! the sending side (once now, against the three encodes and two JSON trees
//! it took before), decoding a bus envelope, encoding an event frame once,
//! and dispatching one message to a room of local sockets. `cargo bench -p omnibiz-gateway`; for repeatable
//! instruction counts run the bench binary under `valgrind --tool=callgrind`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use omnibiz_domain::views::{MessageView, raw_json};
use omnibiz_domain::{ConversationId, Side};
use omnibiz_gateway::hub::Admission;
use omnibiz_gateway::transport::{CloseReason, Connection, OutEvent, SendError};
use omnibiz_gateway::{GatewayConfig, Hub};
use omnibiz_service::auth::{Principal, Verifier};
use omnibiz_service::bus::local::LocalBus;
use omnibiz_service::bus::{Envelope, EventKind, Published, Topic};
use omnibiz_service::messaging::Messaging;
use omnibiz_service::presence::LocalPresence;
use omnibiz_store::NewMessage;
use serde_json::json;

/// A connection that only counts what it is sent.
struct Counting(AtomicU64);

impl Connection for Counting {
    fn send(&self, _event: &OutEvent) -> Result<(), SendError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn close(&self, _reason: CloseReason) {}
}

fn message_payload(seq: i64) -> serde_json::Value {
    json!({
        "id": "6b0639874735d08995c181b5", "conversationId": "6b0639874735d08995c181b4",
        "senderId": "6b0639874735d08995c181af", "senderName": "Alice Silva", "senderRole": "customer",
        "content": "Hi! Is my order on its way? It was supposed to arrive yesterday.",
        "timestamp": "2026-11-25T01:27:35.621Z", "status": "sent", "seq": seq, "attachments": [],
    })
}

fn message_view(seq: i64) -> MessageView {
    let new = NewMessage {
        conversation_id: ConversationId::new(),
        sender_id: "6b0639874735d08995c181af".into(),
        sender_side: Side::Customer,
        sender_name: "Alice Silva".into(),
        content: "Hi! Is my order on its way? It was supposed to arrive yesterday.".into(),
        attachments: Vec::new(),
        client_message_id: Some("c-6b0639874735d08995c181b0".into()),
        created_at: chrono::Utc::now(),
        reply_to: None,
        acting_for: None,
        team_role: None,
        private: false,
        system: false,
    };
    MessageView::from(&new.into_stored(seq))
}

/// Everything the sending side encodes for one stored socket send: the bus
/// envelope's bytes, the `message_sent` frame and the ack. `encode_once`
/// is the code path (the message encoded once, its JSON text reused);
/// `value_trees` is how it was done before (a `Value` tree for the
/// envelope and another for the reply, each serialized).
fn sender_encode(c: &mut Criterion) {
    let view = message_view(7);
    let conv = ConversationId::new();
    c.bench_function("sender_encode_once", |b| {
        b.iter(|| {
            let json = raw_json(&view);
            let env = Envelope::from_raw(EventKind::MessageCreated, Some(conv), json.clone());
            let bus = serde_json::to_vec(&env).expect("envelope");
            let sent = OutEvent::raw("message_sent", &json);
            let ack = format!(r#"{{"ok":true,"message":{}}}"#, json.get());
            bus.len() + sent.frame().len() + ack.len()
        })
    });
    c.bench_function("sender_encode_value_trees", |b| {
        b.iter(|| {
            let payload = serde_json::to_value(&view).expect("tree");
            let env = Envelope::new(EventKind::MessageCreated, Some(conv), payload);
            let bus = serde_json::to_vec(&env).expect("envelope");
            let reply = serde_json::to_value(&view).expect("tree");
            let sent = OutEvent::new("message_sent", reply.clone());
            let ack = json!({"ok": true, "message": reply}).to_string();
            bus.len() + sent.frame().len() + ack.len()
        })
    });
}

/// What a gateway does with every envelope off Redis: decode it (the
/// payload stays raw JSON) and read the routing fields.
fn envelope_decode(c: &mut Criterion) {
    let env = Envelope::new(EventKind::MessageCreated, None, message_payload(7));
    let bytes = serde_json::to_vec(&env).expect("encode");
    c.bench_function("envelope_decode_and_meta", |b| {
        b.iter(|| {
            let env = serde_json::from_slice::<Envelope>(&bytes).expect("decode");
            env.meta().seq
        })
    });
}

/// The frame of one event, built once per delivery: spliced from the raw
/// bus payload (the relay path), or serialized from a JSON value (acks,
/// replayed history).
fn event_encode(c: &mut Criterion) {
    let env = Envelope::new(EventKind::MessageCreated, None, message_payload(7));
    c.bench_function("event_frame_from_raw_payload", |b| {
        b.iter(|| OutEvent::raw("message_received", &env.payload).frame().len())
    });
    let payload = message_payload(7);
    c.bench_function("event_frame_from_value", |b| {
        b.iter_batched(
            || payload.clone(),
            |p| OutEvent::new("message_received", p).frame().len(),
            BatchSize::SmallInput,
        )
    });
}

fn room_fanout(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let (hub, published) = rt.block_on(async {
        let support::Pair { store, customer, conversation: conv, .. } = support::owner_customer_conversation().await;
        let messaging =
            Messaging::new(store, Arc::new(LocalBus::default()), Arc::new(LocalPresence::default()), "bench");
        let actor = messaging.actor(Principal::Customer { id: customer.id }).await.expect("actor");
        let verifier = Arc::new(Verifier::new(b"bench", None).expect("verifier"));
        // Relay-only: the bench dispatches one envelope over and over, which
        // the stored mode would (rightly) deliver once per room.
        let config = GatewayConfig { relay_only: true, ..GatewayConfig::default() };
        let hub = Hub::new(messaging, verifier, Arc::new(LocalPresence::default()), config);
        // 1000 sockets of the customer in one room: the fan-out of one message.
        for _ in 0..1000 {
            let admitted = Admission { actor: actor.clone(), expires_at: u64::MAX };
            let id = hub.register(Arc::new(Counting(AtomicU64::new(0))), admitted);
            let reply = hub.handle(id, "join_conversation", json!(conv.id.to_hex())).await.expect("reply");
            assert!(reply.ack.get().starts_with(r#"{"ok":true"#), "{}", reply.ack);
        }
        let env = Envelope::new(EventKind::MessageCreated, Some(conv.id), message_payload(1));
        (hub, Published { topic: Topic::Conversation(conv.id), envelope: Arc::new(env) })
    });
    c.bench_function("room_fanout_1000_sockets", |b| b.iter(|| hub.dispatch(&published)));
}

criterion_group!(benches, sender_encode, envelope_decode, event_encode, room_fanout);
criterion_main!(benches);
