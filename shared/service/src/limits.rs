//! Per-principal rate limits: one bucket per principal and [`Action`],
//! shared by every door that leads to the same work — a message sent over
//! REST and one sent over a socket draw from the same `Send` bucket, so
//! neither door bypasses the other.
//!
//! Buckets live in the process (GCRA via `governor`, a few dozen bytes per
//! active principal and action, pruned by [`Limits::prune`]). A limit is
//! therefore per pod: with `n` API pods a principal gets at most `n` times
//! the rate, which still bounds what one principal costs each pod (the
//! point of the limit). What must hold across pods — the number of sockets
//! a principal keeps open — is counted through the presence backend instead
//! (see `omnibiz-gateway`'s admission).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omnibiz_domain::Party;

/// What a request or socket event costs, by the kind of work behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Sending a message (REST send, quick reply send, `send_message`).
    Send,
    /// Changing stored state: edits and deletes, conversation changes,
    /// quick replies, webhooks, revocations, token refreshes.
    Write,
    /// Read receipts and delivery acks (`mark_read`, `message_delivered`),
    /// which clients send for each message they receive.
    Receipt,
    /// Reading: lists, single resources, file links and downloads.
    Read,
    /// Full-text search (the most expensive read).
    Search,
    /// Storing an upload.
    Upload,
    /// `typing_start` / `typing_stop`.
    Typing,
    /// `join_conversation` / `leave_conversation` (a store read and a bus
    /// subscription each).
    Join,
    /// Opening a socket.
    Connect,
}

impl Action {
    /// Every action, for metrics labels registered at zero.
    pub const ALL: [Self; 9] = [
        Self::Send,
        Self::Write,
        Self::Receipt,
        Self::Read,
        Self::Search,
        Self::Upload,
        Self::Typing,
        Self::Join,
        Self::Connect,
    ];

    /// The metrics label and the word used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Write => "write",
            Self::Receipt => "receipt",
            Self::Read => "read",
            Self::Search => "search",
            Self::Upload => "upload",
            Self::Typing => "typing",
            Self::Join => "join",
            Self::Connect => "connect",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Uploads in flight per principal, unless configured otherwise.
pub const DEFAULT_UPLOADS: usize = 2;

/// Sustained rate per principal per second of each action; bursts of twice that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub send: u32,
    pub write: u32,
    pub receipt: u32,
    pub read: u32,
    pub search: u32,
    pub upload: u32,
    pub typing: u32,
    pub join: u32,
    pub connect: u32,
}

impl Default for Rates {
    fn default() -> Self {
        Self { send: 20, write: 20, receipt: 100, read: 50, search: 5, upload: 5, typing: 5, join: 20, connect: 10 }
    }
}

impl Rates {
    fn of(&self, action: Action) -> u32 {
        match action {
            Action::Send => self.send,
            Action::Write => self.write,
            Action::Receipt => self.receipt,
            Action::Read => self.read,
            Action::Search => self.search,
            Action::Upload => self.upload,
            Action::Typing => self.typing,
            Action::Join => self.join,
            Action::Connect => self.connect,
        }
    }
}

/// A refused call: which limit, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many {} requests; retry in {}s", .action.name(), .retry_after.as_secs().max(1))]
pub struct RateLimited {
    pub action: Action,
    pub retry_after: Duration,
}

impl RateLimited {
    /// Whole seconds to wait, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The buckets of every principal and action in this process, and the
/// uploads each principal has in flight.
pub struct Limits {
    buckets: Vec<DefaultKeyedRateLimiter<Party>>,
    clock: DefaultClock,
    uploads: Mutex<HashMap<Party, usize>>,
    max_uploads: usize,
}

/// One upload in flight; dropping it (the upload finished, failed, or its
/// client went away) makes room for the next.
#[derive(Debug)]
pub struct UploadSlot {
    limits: Arc<Limits>,
    party: Party,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut m = self.limits.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.party) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.party);
            }
        }
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("principals", &self.buckets.iter().map(|b| b.len()).sum::<usize>()).finish()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(Rates::default())
    }
}

fn quota(per_sec: u32) -> Quota {
    let n = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(n).allow_burst(n.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN)))
}

impl Limits {
    pub fn new(rates: Rates) -> Self {
        for a in Action::ALL {
            metrics::counter!("rate_limited_total", "action" => a.name()).increment(0);
        }
        let buckets = Action::ALL.iter().map(|a| RateLimiter::keyed(quota(rates.of(*a)))).collect();
        Self { buckets, clock: DefaultClock::default(), uploads: Mutex::default(), max_uploads: DEFAULT_UPLOADS }
    }

    /// Uploads one principal may have in flight at once (default 2).
    #[must_use]
    pub fn with_upload_concurrency(mut self, max: usize) -> Self {
        self.max_uploads = max.max(1);
        self
    }

    /// A slot for one more upload of `party`, or a refusal while it has
    /// the maximum in flight.
    pub fn upload_slot(self: &Arc<Self>, party: Party) -> Result<UploadSlot, RateLimited> {
        let mut m = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(party).or_insert(0);
        if *n >= self.max_uploads {
            metrics::counter!("rate_limited_total", "action" => Action::Upload.name()).increment(1);
            return Err(RateLimited { action: Action::Upload, retry_after: Duration::from_secs(1) });
        }
        *n += 1;
        Ok(UploadSlot { limits: Arc::clone(self), party })
    }

    /// Takes one unit of `action` from `party`'s bucket, or says when one is free.
    pub fn check(&self, party: Party, action: Action) -> Result<(), RateLimited> {
        let Some(bucket) = self.buckets.get(action.index()) else { return Ok(()) };
        bucket.check_key(&party).map_err(|not_until| {
            metrics::counter!("rate_limited_total", "action" => action.name()).increment(1);
            RateLimited { action, retry_after: not_until.wait_time_from(self.clock.now()) }
        })
    }

    /// Forgets buckets that are full again (principals that went quiet).
    pub fn prune(&self) {
        for b in &self.buckets {
            b.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use omnibiz_domain::{CustomerId, ObjectId, UserId};

    use super::*;

    #[test]
    fn a_bucket_is_per_principal_and_action_and_says_when_to_retry() {
        let limits = Limits::new(Rates { search: 1, ..Rates::default() });
        let a = Party::Owner(UserId(ObjectId::new()));
        let b = Party::Customer(CustomerId(ObjectId::new()));
        // Burst of twice the rate, then refused with a wait of about a second.
        assert!(limits.check(a, Action::Search).is_ok());
        assert!(limits.check(a, Action::Search).is_ok());
        let refused = limits.check(a, Action::Search).expect_err("third search in a burst of 2");
        assert_eq!(refused.action, Action::Search);
        assert!(refused.retry_after <= Duration::from_secs(1), "{refused:?}");
        assert_eq!(refused.retry_after_secs(), 1);
        assert!(limits.check(b, Action::Search).is_ok(), "another principal has its own bucket");
        assert!(limits.check(a, Action::Read).is_ok(), "another action has its own bucket");
    }

    #[test]
    fn uploads_in_flight_are_capped_per_principal_until_a_slot_is_dropped() {
        let limits = Arc::new(Limits::default().with_upload_concurrency(2));
        let a = Party::Owner(UserId(ObjectId::new()));
        let first = limits.upload_slot(a).expect("first");
        let _second = limits.upload_slot(a).expect("second");
        assert!(limits.upload_slot(a).is_err(), "a third while two are in flight");
        assert!(limits.upload_slot(Party::Customer(CustomerId(ObjectId::new()))).is_ok(), "per principal");
        drop(first);
        assert!(limits.upload_slot(a).is_ok(), "a finished upload makes room");
    }
}
