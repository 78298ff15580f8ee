//! The sweeper: removes uploads that no message kept (see the module docs
//! of [`crate::files`]). Any number of processes may run it: every step is
//! idempotent, and an upload is only deleted after checking that no message
//! of its conversation refers to it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use omnibiz_store::UploadStore;

use crate::files::Files;

/// Uploads looked at per pass.
const BATCH: usize = 200;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Unconfirmed uploads that a stored message turned out to refer to.
    pub confirmed: usize,
    /// Uploads deleted with their objects.
    pub deleted: usize,
}

/// One pass over uploads unconfirmed for longer than `orphan_after`.
pub async fn sweep_once(store: &dyn UploadStore, files: &Files) -> anyhow::Result<Swept> {
    let age = chrono::Duration::from_std(files.config.orphan_after).unwrap_or(chrono::Duration::days(1));
    let stale = store.stale_uploads(Utc::now() - age, BATCH).await?;
    let mut out = Swept::default();
    for u in stale {
        if let Some(message) = store.message_with_upload(u.conversation_id, u.id).await? {
            store.confirm_uploads(&[u.id], message).await?;
            out.confirmed += 1;
            continue;
        }
        files.delete(u.id).await?;
        store.delete_upload(u.id).await?;
        metrics::counter!("uploads_swept_total").increment(1);
        out.deleted += 1;
    }
    Ok(out)
}

/// Sweeps every `every` until the process ends; failures are logged and retried.
pub async fn run(store: Arc<dyn UploadStore>, files: Arc<Files>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(store.as_ref(), &files).await {
            Ok(s) if s != Swept::default() => {
                tracing::info!(deleted = s.deleted, confirmed = s.confirmed, "swept unattached uploads");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error.cause_chain = ?e, "sweeping uploads failed; will retry"),
        }
    }
}
