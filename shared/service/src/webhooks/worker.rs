//! The webhook worker: fans outbox events out into deliveries, and sends
//! due deliveries. Any number of processes may run it on one store (see
//! the module docs of [`crate::webhooks`] for the guarantees).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use omnibiz_domain::events::body;
use omnibiz_domain::webhook::Target;
use omnibiz_domain::{CustomerId, Party, Side, UserId};
use omnibiz_store::parties::PartiesCache;
use omnibiz_store::{ConversationStore, OwnerShare, StoreResult, WebhookStore};
use tokio::task::JoinSet;

use super::guard::Guard;
use super::{
    Attempt, Delivery, DeliveryStatus, Endpoint, HookEvent, OutboxEvent, UnreadCheck, attempt_summary, describe,
    push_log, retry_delay, signature,
};
use crate::notify::Notifier;
use crate::presence::Presence;

/// Why a due `message.unread` (or notification) is not sent when its recipient has a live socket.
const ONLINE: &str = "not sent: the recipient is online";

/// Outbox events one fan-out pass takes at most. Under a backlog a pass's
/// reads cost the store about the same for 100 events as for 1 000 (on the
/// substitute MongoDB server their time grows with the number pending, not
/// with the limit), so a backlog drains in few, large passes: 20 000
/// pending messages took 2.7 s instead of 10–20 s with passes of 100 (see
/// docs/bench-notes.md).
const FAN_OUT_BATCH: usize = 1_000;

/// Response bytes read at most; the rest is dropped unread.
const RESPONSE_CAP: usize = 64 * 1024;
/// Characters of a response kept in the log.
const EXCERPT_CHARS: usize = 512;

/// How the worker runs (`webhook_*` settings).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Unique per process: the lease holder's name.
    pub holder: String,
    /// Pause after a pass that was not full, with work or without, so that
    /// a busy store is read in batches and not once per message (see
    /// [`Worker::spawn`]).
    pub poll: Duration,
    /// Whole-request timeout (connect included).
    pub timeout: Duration,
    /// First retry delay; the schedule scales from it ([`super::RETRY_SCHEDULE`]).
    pub retry_base: Duration,
    /// `message.unread` fires this long after a message was stored.
    pub unread_after: Duration,
    /// Failed attempts in a row that disable an endpoint.
    pub disable_after: i64,
    /// Deliveries per second per business owner (bursts of twice that).
    pub per_owner_rate: NonZeroU32,
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// Deliveries of one business owner in flight per process: the most
    /// slots one owner's receivers (slow, failing or many) can hold.
    pub per_owner_concurrency: usize,
    /// Opens the endpoints' sealed secrets (and reseals those under an
    /// older key); `None` reads them as stored.
    pub secrets: Option<Arc<super::sealing::SecretBox>>,
    pub guard: Guard,
}

impl WorkerConfig {
    /// A lease outlives any attempt: a holder that is still sending is never overtaken.
    fn lease(&self) -> Duration {
        self.timeout * 3 + Duration::from_secs(5)
    }
}

/// Fans out and delivers.
pub struct Worker {
    /// The outbox, endpoints and deliveries.
    store: Arc<dyn WebhookStore>,
    /// Who an event's conversation is between, and what they read.
    conversations: Arc<dyn ConversationStore>,
    presence: Arc<dyn Presence>,
    cfg: WorkerConfig,
    client: reqwest::Client,
    limiter: DefaultKeyedRateLimiter<UserId>,
    /// Each conversation's two participants (they never change): an event's
    /// fan-out reads its conversation once per process, not once per event.
    parties: Arc<PartiesCache>,
    /// Push notifications ride on the same outbox and deliveries.
    notifier: Option<Arc<Notifier>>,
}

impl Worker {
    /// A worker on the webhook slice of a store, reading conversations from
    /// `conversations` (the same store: pass one `Arc<dyn Store>` twice).
    pub fn new(
        store: Arc<dyn WebhookStore>,
        conversations: Arc<dyn ConversationStore>,
        presence: Arc<dyn Presence>,
        cfg: WorkerConfig,
    ) -> Self {
        let client = cfg.guard.client(cfg.timeout);
        let burst = cfg.per_owner_rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let limiter = RateLimiter::keyed(Quota::per_second(cfg.per_owner_rate).allow_burst(burst));
        Self { store, conversations, presence, cfg, client, limiter, parties: Arc::default(), notifier: None }
    }

    /// Shares the process's participants cache (see [`crate::messaging::Messaging::parties_cache`]).
    #[must_use]
    pub fn with_parties(mut self, parties: Arc<PartiesCache>) -> Self {
        self.parties = parties;
        self
    }

    /// Plans and sends notifications with the webhooks (see [`crate::notify`]).
    #[must_use]
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// Runs until the task is dropped; store errors are logged and retried.
    ///
    /// Deliveries are sent as tasks of their own, up to `concurrency` at
    /// once and `per_owner_concurrency` of one business owner: a slot is
    /// claimed again as soon as it frees, so a slow receiver holds only
    /// its owner's slots and never makes a pass wait for it.
    ///
    /// Fan-out passes run back to back while they come back full (or claim
    /// every free slot), and `poll` apart otherwise, busy or idle alike: a
    /// pass costs the store the same handful of commands whatever it
    /// carries (three outbox reads, the businesses' endpoints, the
    /// recipients' browsers, one update, one claim), so at a steady send
    /// rate each pass takes everything since the last one. An event waits
    /// at most `poll` plus a pass, the same bound as on an idle worker.
    /// (Measured at 100 sends/s, `strace` of the api: with passes every
    /// `poll / 5` and a read of browsers per recipient, 500 browser reads
    /// for 500 messages and a pass of six commands every ~80 ms — about two
    /// commands per message beyond the send's own; see docs/bench-notes.md.)
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        let me = Arc::new(self);
        tokio::spawn(async move {
            // Dropped with this task: in-flight attempts are aborted, their leases expire.
            let mut running: JoinSet<(UserId, StoreResult<()>)> = JoinSet::new();
            let mut share = OwnerShare { per_owner: me.cfg.per_owner_concurrency.max(1), held: HashMap::new() };
            let mut backoff = me.cfg.poll;
            let mut last_error = String::new();
            loop {
                while let Some(done) = running.try_join_next() {
                    me.finished(done, &mut share);
                }
                let fanned = me.fan_out_once().await;
                let free = me.cfg.concurrency.max(1).saturating_sub(running.len());
                let claimed = if free == 0 { Ok(Vec::new()) } else { me.claim(free, &share).await };
                let pause = match (fanned, claimed) {
                    (Ok(events), Ok(claimed)) => {
                        backoff = me.cfg.poll;
                        last_error.clear();
                        let n = claimed.len();
                        for d in claimed {
                            *share.held.entry(d.owner).or_default() += 1;
                            let worker = Arc::clone(&me);
                            running.spawn(async move { (d.owner, worker.attempt(d).await) });
                        }
                        if events < FAN_OUT_BATCH && n < free { me.cfg.poll } else { Duration::ZERO }
                    }
                    (a, b) => {
                        // A store that is down (or not migrated yet): back off, say so once.
                        let e = [a.err(), b.err()].into_iter().flatten().map(|e| format!("{e:#}")).collect::<Vec<_>>();
                        let e = e.join("; ");
                        if e != last_error {
                            tracing::warn!(error = %e, "webhook worker pass failed; retrying");
                            last_error = e;
                        }
                        let pause = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        pause
                    }
                };
                me.limiter.retain_recent();
                // Wake for the pause, or as soon as a slot frees while all are taken.
                if !pause.is_zero() || running.len() >= me.cfg.concurrency.max(1) {
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        Some(done) = running.join_next(), if !running.is_empty() => me.finished(done, &mut share),
                    }
                }
            }
        })
    }

    /// Reseals every stored secret that is not under the current key (run
    /// at start: after a key rotation, or for secrets stored before
    /// sealing); the number resealed.
    pub async fn reseal_all(store: &dyn WebhookStore, secrets: &super::sealing::SecretBox) -> StoreResult<usize> {
        let mut n = 0;
        for (id, stored) in store.endpoint_secrets().await? {
            if !secrets.needs_reseal(&stored) {
                continue;
            }
            match secrets.open(&stored) {
                Ok(plain) => {
                    if store.set_endpoint_secret(id, &secrets.seal(&plain)).await? {
                        n += 1;
                    }
                }
                Err(e) => {
                    tracing::error!(endpoint = %id, error = %e, "a webhook secret cannot be opened with the configured keys")
                }
            }
        }
        Ok(n)
    }

    /// Books a finished attempt: its owner's slot is free again.
    fn finished(&self, done: Result<(UserId, StoreResult<()>), tokio::task::JoinError>, share: &mut OwnerShare) {
        let (owner, outcome) = match done {
            Ok(v) => v,
            Err(e) => {
                // A panicking attempt: its lease expires and another pass retries it.
                tracing::error!(error = %e, "webhook attempt task failed");
                return;
            }
        };
        if let Some(n) = share.held.get_mut(&owner) {
            *n -= 1;
            if *n == 0 {
                share.held.remove(&owner);
            }
        }
        if let Err(e) = outcome {
            tracing::warn!(error = %format!("{e:#}"), "recording a webhook attempt failed; its lease expires and it is retried");
        }
    }

    async fn claim(&self, n: usize, share: &OwnerShare) -> StoreResult<Vec<Delivery>> {
        let now = Utc::now();
        let lease = chrono::Duration::from_std(self.cfg.lease()).unwrap_or_default();
        self.store.claim_deliveries(&self.cfg.holder, now, now + lease, n, share).await
    }

    /// Turns pending outbox events into deliveries (webhooks, and
    /// notifications when a notifier is set); the number of events handled.
    pub async fn fan_out_once(&self) -> StoreResult<usize> {
        let events = self.store.pending_events(FAN_OUT_BATCH).await?;
        let mut parties = Vec::with_capacity(events.len());
        for e in &events {
            // `None`: its conversation is gone, nothing to report to anyone.
            parties.push(self.parties.get(&*self.conversations, e.conversation).await?);
        }
        let mut notifications = match &self.notifier {
            Some(n) => n.plan(&events, &parties).await?,
            None => vec![Vec::new(); events.len()],
        };
        // Every business's endpoints in one read for the whole pass.
        let owners: std::collections::HashSet<UserId> = parties.iter().flatten().map(|(o, _)| *o).collect();
        let owners: Vec<UserId> = owners.into_iter().collect();
        let endpoints = self.store.endpoints_of_many(&owners).await?;
        let mut batch = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let Some((owner, customer)) = parties[i] else {
                batch.push((e.clone(), Vec::new()));
                continue;
            };
            let eps = endpoints.get(&owner).map_or(&[][..], Vec::as_slice);
            let mut deliveries = self.deliveries_for(e, owner, customer, eps);
            deliveries.append(&mut notifications[i]);
            batch.push((e.clone(), deliveries));
            metrics::counter!("webhook_events_total", "type" => e.kind.as_str()).increment(1);
        }
        self.store.fan_out_all(&batch).await?;
        Ok(events.len())
    }

    fn deliveries_for(&self, e: &OutboxEvent, owner: UserId, customer: CustomerId, eps: &[Endpoint]) -> Vec<Delivery> {
        let now = Utc::now();
        let customer = customer.to_hex();
        let new = |ep: &Endpoint, id: &str, kind: HookEvent, due, check: Option<UnreadCheck>| Delivery {
            id: format!("{id}.{}", ep.id.to_hex()),
            target: Target::Webhook(ep.id),
            owner,
            event_id: id.to_owned(),
            kind,
            conversation: e.conversation,
            body: body(e, id, kind, owner, &customer),
            status: if ep.enabled { DeliveryStatus::Pending } else { DeliveryStatus::Paused },
            attempts: 0,
            next_at: due,
            created_at: now,
            updated_at: now,
            log: Vec::new(),
            unread_check: check,
        };
        let mut out: Vec<Delivery> =
            eps.iter().filter(|ep| ep.wants(e.kind)).map(|ep| new(ep, &e.id, e.kind, now, None)).collect();
        if e.kind == HookEvent::MessageCreated {
            // `message.unread`: due later, sent only if still unread and its recipient offline.
            let seq = e.data["seq"].as_i64().unwrap_or(0);
            let from_owner = e.data["senderRole"].as_str() != Some("customer");
            let check = UnreadCheck { recipient_owner: !from_owner, seq, member: None };
            let due = e.at + chrono::Duration::from_std(self.cfg.unread_after).unwrap_or_default();
            let id = format!("unread_{}", e.id.trim_start_matches("msg_"));
            out.extend(
                eps.iter()
                    .filter(|ep| ep.wants(HookEvent::MessageUnread))
                    .map(|ep| new(ep, &id, HookEvent::MessageUnread, due, Some(check))),
            );
        }
        out
    }

    async fn attempt(&self, mut d: Delivery) -> StoreResult<()> {
        let now = Utc::now();
        let endpoint = match d.target {
            Target::Webhook(id) => Some(id),
            Target::Push(_) | Target::Email(_) => None,
        };
        let Some(endpoint) = endpoint else { return self.notify(d).await };
        let Some(ep) = self.store.get_endpoint(endpoint).await? else {
            return Ok(()); // deleted with its deliveries; the lease expires unused
        };
        if !ep.enabled {
            d.status = DeliveryStatus::Paused;
            self.store.finish_delivery(&d, &self.cfg.holder, now).await?;
            return Ok(());
        }
        if let Some(check) = d.unread_check
            && let Some(why) = self.unread_no_longer_needed(&d, check).await?
        {
            d.status = DeliveryStatus::Skipped;
            push_log(&mut d, Attempt { at: now, status: None, latency_ms: 0, error: Some(why.into()), response: None });
            self.store.finish_delivery(&d, &self.cfg.holder, now).await?;
            return Ok(());
        }
        if self.limiter.check_key(&d.owner).is_err() {
            // Over the owner's rate: try again shortly; not an attempt.
            d.next_at = now + chrono::Duration::milliseconds(200);
            self.store.finish_delivery(&d, &self.cfg.holder, now).await?;
            metrics::counter!("webhook_rate_limited_total").increment(1);
            return Ok(());
        }
        let attempt = match self.secret_of(&ep).await {
            Ok(secret) => self.send(&ep, &secret, &d).await,
            Err(why) => Attempt { at: now, status: None, latency_ms: 0, error: Some(why), response: None },
        };
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        metrics::counter!("webhook_attempts_total", "outcome" => if ok { "success" } else { "failure" }).increment(1);
        metrics::histogram!("webhook_attempt_duration_seconds").record(attempt.latency_ms as f64 / 1000.0);
        d.attempts += 1;
        let summary = attempt_summary(&attempt);
        push_log(&mut d, attempt);
        let streak = self.store.endpoint_attempted(ep.id, ok).await?;
        if ok {
            d.status = DeliveryStatus::Succeeded;
        } else {
            match retry_delay(u32::try_from(d.attempts).unwrap_or(u32::MAX), self.cfg.retry_base) {
                Some(delay) => {
                    d.status = DeliveryStatus::Pending;
                    d.next_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                }
                None => d.status = DeliveryStatus::Failed,
            }
        }
        self.store.finish_delivery(&d, &self.cfg.holder, Utc::now()).await?;
        let reason = if d.status == DeliveryStatus::Failed {
            Some(format!("every attempt of delivery {} over the retry schedule failed (last: {summary})", d.id))
        } else if !ok && streak >= self.cfg.disable_after {
            Some(format!("{streak} attempts in a row failed (last: {summary})"))
        } else {
            None
        };
        if let Some(reason) = reason
            && self.store.disable_endpoint(ep.id, &reason, Utc::now()).await?
        {
            metrics::counter!("webhook_endpoints_disabled_total").increment(1);
            // The host only: receivers' URLs often carry tokens in their path or query.
            let host =
                reqwest::Url::parse(&ep.url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
            tracing::warn!(endpoint = %ep.id, owner = %ep.owner, %host, %reason, "webhook endpoint disabled");
        }
        Ok(())
    }

    /// A notification's attempt: the same unread condition as `message.unread`, then the notifier.
    async fn notify(&self, mut d: Delivery) -> StoreResult<()> {
        let now = Utc::now();
        let Some(n) = self.notifier.as_ref().filter(|n| n.handles(d.target)) else {
            // A process configured without this channel (a rolling configuration
            // change) leaves it to those with it, for a day: not an attempt.
            if now < d.created_at + chrono::Duration::days(1) {
                d.next_at = now + chrono::Duration::seconds(30);
            } else {
                d.status = DeliveryStatus::Skipped;
                let error = Some("not sent: no process could send this channel for a day".into());
                push_log(&mut d, Attempt { at: now, status: None, latency_ms: 0, error, response: None });
            }
            self.store.finish_delivery(&d, &self.cfg.holder, now).await?;
            return Ok(());
        };
        let unneeded = match d.unread_check {
            Some(check) => self.unread_no_longer_needed(&d, check).await?,
            None => None,
        };
        match unneeded {
            // Someone connected may still leave without reading: an email looks again later.
            Some(ONLINE) if matches!(d.target, Target::Email(_)) && n.postpone_email(&mut d) => {}
            Some(why) => {
                d.status = DeliveryStatus::Skipped;
                push_log(
                    &mut d,
                    Attempt { at: now, status: None, latency_ms: 0, error: Some(why.into()), response: None },
                );
                crate::notify::count(crate::notify::channel_label(d.target), "skipped");
            }
            None => n.attempt(&mut d).await?,
        }
        self.store.finish_delivery(&d, &self.cfg.holder, Utc::now()).await?;
        Ok(())
    }

    /// Why a due `message.unread` should not be sent, if it should not.
    async fn unread_no_longer_needed(&self, d: &Delivery, check: UnreadCheck) -> StoreResult<Option<&'static str>> {
        let Some(conv) = self.conversations.get_conversation(d.conversation).await? else {
            return Ok(Some("not sent: the conversation is gone"));
        };
        let (read, room) = match check.member {
            // A group's customer: their own read position, while a member.
            Some(member) => {
                match crate::notify::group_reader(&*self.conversations, &conv, Party::Customer(member)).await? {
                    Some(crate::notify::GroupReader::Member(_, own)) => (own.read_seq, Party::Customer(member).room()),
                    _ => return Ok(Some("not sent: the recipient left the group")),
                }
            }
            None if check.recipient_owner => {
                (conv.read_seq.get(Side::Owner), format!("user:{}", conv.business_owner_id))
            }
            None => (conv.read_seq.get(Side::Customer), format!("customer:{}", conv.customer_id)),
        };
        if read >= check.seq {
            return Ok(Some("not sent: the recipient has read the message"));
        }
        if self.presence.online(std::slice::from_ref(&room)).await.first().copied().unwrap_or(false) {
            return Ok(Some(ONLINE));
        }
        Ok(None)
    }

    /// The endpoint's signing secret, opened; resealed under the current key when it is not.
    async fn secret_of(&self, ep: &Endpoint) -> Result<String, String> {
        let Some(secrets) = &self.cfg.secrets else { return Ok(ep.secret.clone()) };
        let secret = secrets.open(&ep.secret).map_err(|e| format!("the endpoint's signing secret: {e}"))?;
        if secrets.needs_reseal(&ep.secret)
            && let Err(e) = self.store.set_endpoint_secret(ep.id, &secrets.seal(&secret)).await
        {
            tracing::warn!(error = %format!("{e:#}"), endpoint = %ep.id, "resealing a webhook secret failed; retried next time");
        }
        Ok(secret)
    }

    async fn send(&self, ep: &Endpoint, secret: &str, d: &Delivery) -> Attempt {
        let at = Utc::now();
        let start = Instant::now();
        let failed = |error: String| Attempt {
            at,
            status: None,
            latency_ms: start.elapsed().as_millis() as i64,
            error: Some(error),
            response: None,
        };
        let url = match self.cfg.guard.check(&ep.url, false).await {
            Ok(u) => u,
            Err(e) => return failed(e),
        };
        let t = at.timestamp();
        let res = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("omnibiz-event-id", &d.event_id)
            .header("omnibiz-event-type", d.kind.as_str())
            .header("omnibiz-delivery-id", &d.id)
            .header("omnibiz-delivery-attempt", (d.attempts + 1).to_string())
            .header("omnibiz-signature", signature(secret, t, d.body.as_bytes()))
            .body(d.body.clone())
            .send()
            .await;
        let mut res = match res {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = res.status().as_u16();
        let mut buf: Vec<u8> = Vec::new();
        let mut error = None;
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_CAP.saturating_sub(buf.len());
                    buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if buf.len() >= RESPONSE_CAP {
                        break; // the rest is dropped with the connection
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the response: {}", describe(&e)));
                    break;
                }
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let excerpt: String = text.chars().take(EXCERPT_CHARS).collect();
        Attempt {
            at,
            status: Some(status),
            latency_ms: start.elapsed().as_millis() as i64,
            error,
            response: (!excerpt.is_empty()).then_some(excerpt),
        }
    }
}
