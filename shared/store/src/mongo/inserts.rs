//! Group commit for message inserts.
//!
//! A send's insert is queued here and answered when its own document is
//! stored. While [`IN_FLIGHT`] batches are already on their way, new inserts
//! wait in the queue, and the next free slot takes everything waiting (up to
//! [`MAX_BATCH`]) as one unordered `insertMany`. At low load every insert
//! goes alone, as soon as it arrives; under load the database receives one
//! command (and, with `j: true`, one journal wait) for many messages instead
//! of one each.
//!
//! Each document gets its own outcome: an unordered `insertMany` stores the
//! others when one is refused (a retried `clientMessageId`), and the driver
//! says which ones failed, by position.

use mongodb::Collection;
use mongodb::bson::Document;
use mongodb::error::{Error, ErrorKind};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most documents in one `insertMany`.
pub(super) const MAX_BATCH: usize = 64;
/// Batches on their way to the database at once.
pub(super) const IN_FLIGHT: usize = 4;

/// Why one queued document was not stored.
#[derive(Debug)]
pub(super) enum InsertError {
    /// The server refused this document (`code` 11000: a unique index).
    Refused { code: i32, message: String },
    /// The whole command failed (unreachable server, write concern, …);
    /// whether this document was stored is not known.
    Command(Error),
    /// The queue's task is gone (its runtime shut down).
    Closed,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { code, message } => write!(f, "the server refused the document (code {code}): {message}"),
            Self::Command(e) => write!(f, "{e}"),
            Self::Closed => f.write_str("the insert queue's task has stopped (runtime shut down)"),
        }
    }
}

impl InsertError {
    pub(super) fn is_duplicate_key(&self) -> bool {
        matches!(self, Self::Refused { code: 11000, .. })
    }
}

struct Queued {
    doc: Document,
    done: oneshot::Sender<Result<(), InsertError>>,
}

/// The queue in front of the `messages` collection. Cheap to clone.
/// Unbounded, but an append holds one of the store's append permits while
/// it waits here, so at most that many are ever queued.
#[derive(Clone)]
pub(super) struct Inserter {
    tx: mpsc::UnboundedSender<Queued>,
}

impl Inserter {
    /// Starts the task that takes batches off the queue (on the current runtime).
    pub(super) fn spawn(messages: Collection<Document>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(messages, rx));
        Self { tx }
    }

    /// Stores `doc`; returns once the database acknowledged it (or refused it).
    pub(super) async fn insert(&self, doc: Document) -> Result<(), InsertError> {
        let (done, answer) = oneshot::channel();
        self.tx.send(Queued { doc, done }).map_err(|_| InsertError::Closed)?;
        answer.await.unwrap_or(Err(InsertError::Closed))
    }
}

async fn run(messages: Collection<Document>, mut rx: mpsc::UnboundedReceiver<Queued>) {
    let slots = std::sync::Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A free slot first, then whatever has queued up meanwhile.
        let Ok(slot) = std::sync::Arc::clone(&slots).acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        metrics::histogram!("store_insert_batch_size").record(batch.len() as f64);
        let messages = messages.clone();
        tokio::spawn(async move {
            let (docs, waiting): (Vec<Document>, Vec<_>) = batch.into_iter().map(|q| (q.doc, q.done)).unzip();
            let outcome = messages.insert_many(docs).ordered(false).await.map(drop);
            drop(slot);
            answer(outcome, waiting);
        });
    }
}

/// Tells each waiting send what became of its own document.
fn answer(outcome: Result<(), Error>, waiting: Vec<oneshot::Sender<Result<(), InsertError>>>) {
    let e = match outcome {
        Ok(()) => {
            for w in waiting {
                let _ = w.send(Ok(()));
            }
            return;
        }
        Err(e) => e,
    };
    let mut refused: Vec<Option<(i32, String)>> = vec![None; waiting.len()];
    let per_document = match &*e.kind {
        // Only per-document refusals: every other document is stored.
        ErrorKind::InsertMany(im) if im.write_concern_error.is_none() => {
            for we in im.write_errors.iter().flatten() {
                if let Some(slot) = refused.get_mut(we.index) {
                    *slot = Some((we.code, we.message.clone()));
                }
            }
            true
        }
        _ => false,
    };
    for (w, r) in waiting.into_iter().zip(refused) {
        let result = match r {
            Some((code, message)) => Err(InsertError::Refused { code, message }),
            None if per_document => Ok(()),
            None => Err(InsertError::Command(e.clone())),
        };
        let _ = w.send(result);
    }
}
