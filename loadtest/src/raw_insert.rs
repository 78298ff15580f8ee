//! `raw-insert`: the database's own ceiling for the stored path — the same
//! driver inserting the same message documents, with the same indexes, into
//! the same MongoDB server, at the concurrency our API uses for appends
//! (16 at a time per process), as fast as the server takes them. A stored
//! send does this insert plus the `seq` update; `rest-send` is reported as a
//! fraction of this rate. Writes use the store's write concern (`j: true`
//! unless the URI sets one).
//!
//! A second phase runs a stored send's two commands back to back (the
//! `seq` update on a conversation document with the store's conversation
//! indexes, then the insert), at the same concurrency: the database's
//! ceiling for sends, with no HTTP, no JSON, no Redis, no gateway. Both
//! phases report the database server's CPU per operation (`--pids`).
//!
//! The indexes are the ones our server created in the same database, read
//! with `listIndexes` (see `copy_indexes`): run omnibiz on that database once
//! before this scenario (`scripts/bench.sh` starts the API first).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use hdrhistogram::Histogram;
use mongodb::bson::Document;
use mongodb::bson::{self, doc, oid::ObjectId};
use mongodb::{Client, Collection, Database, IndexModel};
use serde_json::{Value, json};

pub struct Plan {
    pub uri: String,
    pub database: String,
    pub concurrency: usize,
    pub duration: Duration,
    /// Conversations the documents are spread over.
    pub conversations: usize,
    /// Server PIDs to read CPU from (the database server's).
    pub pids: Vec<u32>,
}

/// The write concern our store uses: wait for the journal unless the URI
/// says otherwise (what any client of the server can ask for).
fn durable_writes(opts: &mut mongodb::options::ClientOptions) {
    let wc = opts.write_concern.get_or_insert_with(Default::default);
    if wc.journal.is_none() {
        wc.journal = Some(true);
    }
}

/// Makes on `to` the indexes our server created on collection `from` of the
/// same database, read back with `listIndexes` as any client can: the load
/// generator needs nothing of ours but the wire protocol.
async fn copy_indexes(db: &Database, from: &str, to: &Collection<Document>) -> anyhow::Result<()> {
    let missing = || {
        anyhow::anyhow!(
            "`{from}` in database `{}` has no indexes of ours: start omnibiz (serve or api) on this database once \
             first; it creates them",
            db.name()
        )
    };
    let listed = match db.collection::<Document>(from).list_indexes().await {
        Ok(cursor) => cursor.try_collect::<Vec<IndexModel>>().await?,
        Err(e) if matches!(&*e.kind, mongodb::error::ErrorKind::Command(ce) if ce.code == 26) => return Err(missing()),
        Err(e) => return Err(e.into()),
    };
    let ours: Vec<IndexModel> = listed.into_iter().filter(|m| m.keys != bson::doc! {"_id": 1}).collect();
    if ours.is_empty() {
        return Err(missing());
    }
    to.create_indexes(ours).await?;
    Ok(())
}

pub async fn run(plan: &Plan) -> anyhow::Result<Value> {
    let mut opts = mongodb::options::ClientOptions::parse(&plan.uri).await?;
    durable_writes(&mut opts);
    let write_concern = format!("{:?}", opts.write_concern);
    let client = Client::with_options(opts)?;
    let db = client.database(&plan.database);
    let coll = db.collection::<bson::Document>("raw_insert_messages");
    coll.drop().await?;
    copy_indexes(&db, "messages", &coll).await?;
    let conversations: Arc<Vec<ObjectId>> = Arc::new((0..plan.conversations.max(1)).map(|_| ObjectId::new()).collect());
    let sender = ObjectId::new();
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let before = crate::procstat::sample(&plan.pids);
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (coll, conversations, next, errors) =
            (coll.clone(), Arc::clone(&conversations), Arc::clone(&next), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let conv = conversations[(n as usize) % conversations.len()];
                let seq = i64::try_from(n / conversations.len() as u64 + 1).unwrap_or(i64::MAX);
                let d = message_doc(conv, seq, sender, &format!("raw-{n}"), bson::DateTime::now());
                let t = Instant::now();
                let inserted = coll.insert_one(d).await;
                record(&mut hist, t, inserted.is_ok(), &errors);
            }
            hist
        }));
    }
    let hist = merged(tasks).await?;
    let secs = start.elapsed().as_secs_f64();
    let after = crate::procstat::sample(&plan.pids);
    let inserted = hist.len();
    let pairs = send_pairs(plan, &db, &coll, &conversations, sender).await?;
    coll.drop().await?;
    db.collection::<bson::Document>("raw_insert_conversations").drop().await?;
    Ok(json!({
        "concurrency": plan.concurrency,
        "write_concern": write_concern,
        "inserted": inserted,
        "errors": errors.load(Ordering::Relaxed),
        "inserts_per_sec": inserted as f64 / secs,
        "latency_ms": latency(&hist),
        "server_cpu_secs": after.cpu_secs - before.cpu_secs,
        "server_cpu_us_per_insert": (after.cpu_secs - before.cpu_secs) * 1e6 / inserted.max(1) as f64,
        "send_pairs": pairs,
    }))
}

/// The document `append_message` writes, field for field; `key` is its
/// `clientMessageId` (and its content).
fn message_doc(conv: ObjectId, seq: i64, sender: ObjectId, key: &str, at: bson::DateTime) -> bson::Document {
    doc! {
        "_id": ObjectId::new(), "conversationId": conv, "seq": seq, "senderId": sender,
        "senderModel": "Customer", "senderRole": "customer", "senderName": "Load Customer",
        "content": key, "attachments": [], "status": "sent", "readBy": [],
        "isDeleted": false, "createdAt": at, "updatedAt": at, "__v": 0_i32, "hook": true,
        "clientMessageId": key,
    }
}

/// Records one operation's latency since `t`, or counts it as an error.
fn record(hist: &mut Histogram<u64>, t: Instant, ok: bool, errors: &AtomicU64) {
    if ok {
        let _ = hist.record(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
    } else {
        errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The workers' histograms, merged.
async fn merged(tasks: Vec<tokio::task::JoinHandle<Histogram<u64>>>) -> anyhow::Result<Histogram<u64>> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for t in tasks {
        hist.add(&t.await?)?;
    }
    Ok(hist)
}

fn latency(hist: &Histogram<u64>) -> Value {
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    json!({"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0})
}

/// A stored send's two commands, back to back, as fast as the server takes
/// them: the `seq` update `append_message` makes (same filter, same update,
/// same projection), then the insert.
async fn send_pairs(
    plan: &Plan,
    db: &mongodb::Database,
    messages: &mongodb::Collection<bson::Document>,
    conversations: &Arc<Vec<ObjectId>>,
    sender: ObjectId,
) -> anyhow::Result<Value> {
    let convs = db.collection::<bson::Document>("raw_insert_conversations");
    convs.drop().await?;
    // The store's conversation indexes too: the `seq` update moves the
    // conversation in both parties' lists (`activityAt`).
    copy_indexes(db, "conversations", &convs).await?;
    let now = bson::DateTime::now();
    let docs: Vec<bson::Document> = conversations
        .iter()
        .map(|id| {
            doc! {
                "_id": id, "businessOwnerId": ObjectId::new(), "customerId": sender, "status": "active",
                "lastSeq": 0_i64, "activityAt": now,
            }
        })
        .collect();
    convs.insert_many(docs).await?;
    let before = crate::procstat::sample(&plan.pids);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut tasks = Vec::new();
    for _ in 0..plan.concurrency.max(1) {
        let (convs, messages, conversations, next, errors) =
            (convs.clone(), messages.clone(), Arc::clone(conversations), Arc::clone(&next), Arc::clone(&errors));
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let conv = conversations[(n as usize) % conversations.len()];
                let at = bson::DateTime::now();
                let t = Instant::now();
                let counter = convs
                    .find_one_and_update(
                        doc! {"_id": conv, "customerId": sender, "status": {"$ne": "blocked"}},
                        doc! {
                            "$inc": {"lastSeq": 1_i64, "unreadCount.businessOwner": 1_i32},
                            "$set": {
                                "lastMessage": {"content": format!("pair {n}"), "senderId": sender, "timestamp": at},
                                "lastMessageTime": at, "activityAt": at, "updatedAt": at,
                            },
                        },
                    )
                    .projection(doc! {"lastSeq": 1})
                    .return_document(mongodb::options::ReturnDocument::After)
                    .await;
                let seq = match counter {
                    Ok(Some(d)) => d.get_i64("lastSeq").unwrap_or(0) + 1_000_000_000,
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                let inserted = messages.insert_one(message_doc(conv, seq, sender, &format!("pair-{n}"), at)).await;
                record(&mut hist, t, inserted.is_ok(), &errors);
            }
            hist
        }));
    }
    let hist = merged(tasks).await?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = crate::procstat::sample(&plan.pids).cpu_secs - before.cpu_secs;
    Ok(json!({
        "server_cpu_secs": cpu,
        "server_cpu_us_per_pair": cpu * 1e6 / hist.len().max(1) as f64,
        "pairs": hist.len(),
        "errors": errors.load(Ordering::Relaxed),
        "pairs_per_sec": hist.len() as f64 / secs,
        "latency_ms": latency(&hist),
    }))
}
