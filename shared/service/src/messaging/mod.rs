//! The messaging service: the one code path for every change, whether it
//! comes from REST or from a socket. Handlers authenticate, parse input into
//! domain types and call one function here.
//!
//! Every stored change is followed by a bus publish (store first, then
//! publish). A failed publish is logged and counted, never turned into a
//! failed request: the data is safe and clients recover by `seq`. A send
//! retried with the same `clientMessageId` publishes the stored message
//! again, so a process that died between storing and publishing loses no
//! live delivery (gateways deliver each stored `seq` once).

mod conversations;
mod customers;
mod edit;
mod error;
mod groups;
mod notifications;
mod previews;
mod publishing;
mod quick_replies;
mod reactions;
mod receipts;
mod search;
mod send;
mod sessions;
mod team;
mod uploads;
pub mod webhooks;

pub use conversations::{AssignedFilter, ConversationPage, MessagePage};
pub use customers::CustomerPage;
pub use error::{ServiceError, ServiceResult};
pub use notifications::{SubscribeCommand, SubscriptionView};
pub use quick_replies::{MAX_QUICK_REPLIES, QuickReplyView};
pub use receipts::ReadReceipt;
pub use search::{MAX_SEARCH_PAGE, SearchHit};
pub use send::{SendCommand, Sent};
pub use team::{MemberView, TeamView};

use std::sync::Arc;

use omnibiz_domain::views;
use omnibiz_domain::{Party, Seat, Side, TeamRole, UserId};
use omnibiz_store::Store;
use omnibiz_store::parties::PartiesCache;
use tracing::instrument;

use crate::auth::Principal;
use crate::bus::Bus;
use crate::files::Files;
use crate::limits::{Action, Limits};
use crate::presence::Presence;

/// Default and maximum page sizes.
pub const MAX_CONVERSATIONS_PAGE: usize = 200;
pub const MAX_MESSAGES_PAGE: usize = 500;
pub const MAX_CUSTOMERS_PAGE: usize = 200;
/// At most this many customers are considered when a conversation search matches by name.
pub(super) const SEARCH_CUSTOMER_CAP: usize = 1000;
/// Characters of a message shown in a notification.
pub const PREVIEW_CHARS: usize = 100;
/// How long a sender may edit or delete a message, unless configured otherwise.
pub const DEFAULT_EDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// An authenticated principal with its stored record.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    /// The name messages show: a team member's with the business's, `Ana (Acme)`.
    pub name: String,
    /// For a customer: the business owner who invited them.
    pub invited_by: Option<UserId>,
    /// For a user: the business they act for — their own, or the one whose
    /// team they are in — and in which role. `None` for a customer.
    pub seat: Option<Seat>,
}

impl Actor {
    pub fn side(&self) -> Side {
        self.principal.side()
    }

    /// The business this user acts for (`None` for a customer).
    pub fn business(&self) -> Option<UserId> {
        self.seat.map(|s| s.business)
    }

    /// Who this actor is in a conversation: the business (whoever of its
    /// team acts), or the customer.
    pub fn party(&self) -> Party {
        match self.seat {
            Some(s) => Party::Owner(s.business),
            None => self.principal.party(),
        }
    }

    /// The role, when this is a team member acting for someone else's business.
    pub fn team_role(&self) -> Option<TeamRole> {
        self.seat.and_then(|s| s.role)
    }

    /// The business, for what only its owner and admins may do (managing
    /// the team, webhooks, conversation metadata); 403 for agents, 404-free.
    pub(crate) fn managed_business(&self) -> ServiceResult<UserId> {
        match self.seat {
            Some(s) if s.manages() => Ok(s.business),
            Some(_) => Err(ServiceError::Forbidden("agents cannot do this; ask an admin of the team".into())),
            None => Err(ServiceError::Forbidden("only the business can do this".into())),
        }
    }
}

pub(super) fn page_size(asked: Option<usize>, max: usize) -> ServiceResult<usize> {
    match asked {
        None => Ok(max),
        Some(0) => Err(ServiceError::Invalid("limit must be at least 1".into())),
        Some(n) => Ok(n.min(max)),
    }
}

/// The messaging service. Cheap to clone.
#[derive(Clone)]
pub struct Messaging {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    /// Identifies this process in bus envelopes.
    origin: Arc<str>,
    /// Where webhook endpoints may point.
    hook_guard: crate::webhooks::guard::Guard,
    /// Where uploads go; `None` when file storage is not configured.
    files: Option<Arc<Files>>,
    /// How long after sending a sender may edit or delete; `None`: always.
    edit_window: Option<std::time::Duration>,
    /// Accounts behind tokens (name, inviting owner), for a short TTL.
    accounts: Option<moka::sync::Cache<Principal, Arc<AccountEntry>>>,
    /// Each conversation's two participants, which never change.
    participants: Arc<PartiesCache>,
    /// Per-principal rate limits, shared by REST and sockets in one process.
    limits: Arc<Limits>,
    /// Seals webhook signing secrets at rest; `None` stores them as they are.
    hook_secrets: Option<Arc<crate::webhooks::sealing::SecretBox>>,
    /// Make link previews (the webhooks' address guard applies).
    link_previews: bool,
    previews: crate::linkcards::PreviewCache,
    /// Stored sends at once in this process (see [`crate::overload`]).
    send_gate: crate::overload::SendGate,
    /// Web Push (its VAPID key, the endpoint rules); `None` when not configured.
    notifier: Option<Arc<crate::notify::Notifier>>,
    /// Each business's team rules, read once per account TTL (every
    /// customer send asks whether to assign automatically).
    team_rules: moka::sync::Cache<UserId, omnibiz_domain::TeamSettings>,
    /// Whether a business has team members (then its people keep read
    /// positions of their own), read once per account TTL.
    has_team: moka::sync::Cache<UserId, bool>,
    /// Whose turn it is among equally loaded agents (automatic assignment).
    turn: Arc<std::sync::atomic::AtomicUsize>,
}

/// What [`Messaging::actor`] keeps of an account.
#[derive(Debug)]
struct AccountEntry {
    name: String,
    invited_by: Option<UserId>,
    seat: Option<Seat>,
    /// When the principal's sessions were last revoked (Unix seconds).
    revoked_at: Option<i64>,
}

/// How long an account read for a token is reused, unless configured otherwise.
pub const DEFAULT_ACCOUNT_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most accounts the cache holds (≈ 100–200 bytes an entry).
const CACHE_CAPACITY: u64 = 100_000;

fn account_cache(ttl: std::time::Duration) -> Option<moka::sync::Cache<Principal, Arc<AccountEntry>>> {
    (!ttl.is_zero()).then(|| moka::sync::Cache::builder().max_capacity(CACHE_CAPACITY).time_to_live(ttl).build())
}

impl Messaging {
    pub fn new(store: Arc<dyn Store>, bus: Arc<dyn Bus>, presence: Arc<dyn Presence>, origin: &str) -> Self {
        let hook_guard = crate::webhooks::guard::Guard { allow_private: false };
        Self {
            store,
            bus,
            presence,
            origin: origin.into(),
            hook_guard,
            files: None,
            edit_window: Some(DEFAULT_EDIT_WINDOW),
            accounts: account_cache(DEFAULT_ACCOUNT_TTL),
            participants: Arc::default(),
            limits: Arc::default(),
            hook_secrets: None,
            link_previews: true,
            previews: crate::linkcards::cache(),
            send_gate: crate::overload::SendGate::unbounded(),
            notifier: None,
            team_rules: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(DEFAULT_ACCOUNT_TTL)
                .build(),
            has_team: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(DEFAULT_ACCOUNT_TTL)
                .build(),
            turn: Arc::default(),
        }
    }

    /// How long an account read for a token is reused (`0`: read it on every
    /// request). Accounts are owned by the main app; a renamed or deleted
    /// account is seen by this process within `ttl`.
    #[must_use]
    pub fn with_account_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.accounts = account_cache(ttl);
        self
    }

    /// No account or participant cache: for a gateway, which loads an
    /// account once per connection and knows the participants of the rooms
    /// its sockets joined (see [`Messaging::send_from`]); a cache entry per
    /// connected principal would cost ≈ 0.2 KiB each.
    #[must_use]
    pub fn without_caches(mut self) -> Self {
        self.accounts = None;
        self.participants = Arc::new(PartiesCache::disabled());
        self
    }

    /// The participants cache, for the webhook worker of the same process.
    pub fn parties_cache(&self) -> Arc<PartiesCache> {
        Arc::clone(&self.participants)
    }

    /// Stores uploads in `files`.
    #[must_use]
    pub fn with_files(mut self, files: Arc<Files>) -> Self {
        self.files = Some(files);
        self
    }

    /// How long after sending a message its sender may edit or delete it (`None`: always).
    #[must_use]
    pub fn with_edit_window(mut self, window: Option<std::time::Duration>) -> Self {
        self.edit_window = window;
        self
    }

    /// Per-principal rate limits (one set per process: give the API and the
    /// gateway of one process the same `Messaging` so they share buckets).
    #[must_use]
    /// Bounds stored sends in flight; past it, sends are refused early
    /// ([`ServiceError::Overloaded`]) rather than queued without bound.
    pub fn with_send_gate(mut self, gate: crate::overload::SendGate) -> Self {
        self.send_gate = gate;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// Takes one unit of `action` from the caller's bucket, or refuses with
    /// [`ServiceError::RateLimited`] (429 / `RATE_LIMITED`).
    pub fn check_rate(&self, party: omnibiz_domain::Party, action: Action) -> ServiceResult<()> {
        Ok(self.limits.check(party, action)?)
    }

    /// Forgets the buckets of principals that went quiet (call every minute or so).
    pub fn prune_limits(&self) {
        self.limits.prune();
    }

    /// Seals webhook signing secrets with `secrets` before storing them.
    #[must_use]
    pub fn with_hook_secrets(mut self, secrets: Arc<crate::webhooks::sealing::SecretBox>) -> Self {
        self.hook_secrets = Some(secrets);
        self
    }

    /// Turns link previews off (`OMNIBIZ_LINK_PREVIEWS=false`).
    #[must_use]
    pub fn with_link_previews(mut self, on: bool) -> Self {
        self.link_previews = on;
        self
    }

    /// File storage, when configured.
    pub fn files(&self) -> Option<&Arc<Files>> {
        self.files.as_ref()
    }

    /// Lets webhook endpoints point at private addresses (`webhook_allow_private`).
    #[must_use]
    /// Takes push subscriptions for this notifier (the one the webhook worker sends with).
    pub fn with_notifier(mut self, notifier: Arc<crate::notify::Notifier>) -> Self {
        self.notifier = Some(notifier);
        self
    }

    pub fn with_hook_guard(mut self, guard: crate::webhooks::guard::Guard) -> Self {
        self.hook_guard = guard;
        self
    }

    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    /// Which store backs this service (`mongodb`, `sqlite`), for logs and `/readyz`.
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// A cheap round trip to the store: `Err` says why it cannot be reached.
    pub async fn ping_store(&self) -> ServiceResult<()> {
        Ok(self.store.ping().await?)
    }

    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Loads the account behind a verified token.
    #[instrument(skip_all, fields(principal = %principal.room()))]
    pub async fn actor(&self, principal: Principal) -> ServiceResult<Actor> {
        Ok(self.account(principal).await?.0)
    }

    /// The account, and when its sessions were last revoked (Unix seconds):
    /// read together, and cached together for the account TTL.
    pub(super) async fn account(&self, principal: Principal) -> ServiceResult<(Actor, Option<i64>)> {
        if let Some(hit) = self.accounts.as_ref().and_then(|c| c.get(&principal)) {
            let actor = Actor { principal, name: hit.name.clone(), invited_by: hit.invited_by, seat: hit.seat };
            // A team member's seat is checked on every call: removing a
            // member ends their access on every pod at once, not after the TTL.
            if let (Some(seat), Principal::User { id, .. }) = (hit.seat, principal)
                && seat.role.is_some()
                && self
                    .store
                    .membership(id)
                    .await?
                    .is_none_or(|m| m.business != seat.business || Some(m.role) != seat.role)
            {
                self.forget_account(principal.party());
            } else {
                return Ok((actor, hit.revoked_at));
            }
        }
        let (actor, revoked) =
            tokio::join!(self.read_actor(principal), self.store.sessions_revoked_at(principal.party()));
        let (actor, revoked_at) = (actor?, revoked?.map(|t| t.timestamp()));
        if let Some(cache) = &self.accounts {
            let entry =
                AccountEntry { name: actor.name.clone(), invited_by: actor.invited_by, seat: actor.seat, revoked_at };
            cache.insert(principal, Arc::new(entry));
        }
        Ok((actor, revoked_at))
    }

    /// Forgets what this process cached of `party`'s account.
    pub(super) fn forget_account(&self, party: omnibiz_domain::Party) {
        let Some(cache) = &self.accounts else { return };
        match party {
            omnibiz_domain::Party::Owner(id) => {
                for role in [omnibiz_domain::UserRole::BusinessOwner, omnibiz_domain::UserRole::Admin] {
                    cache.invalidate(&Principal::User { id, role });
                }
            }
            omnibiz_domain::Party::Customer(id) => cache.invalidate(&Principal::Customer { id }),
        }
    }

    async fn read_actor(&self, principal: Principal) -> ServiceResult<Actor> {
        match principal {
            Principal::User { id, .. } => {
                let (user, membership) = tokio::join!(self.store.get_user(id), self.store.membership(id));
                let user = user?.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?;
                let Some(m) = membership? else {
                    return Ok(Actor { principal, name: user.name, invited_by: None, seat: Some(Seat::owner(id)) });
                };
                // A member of a team acts for that business, under both names.
                let (business, settings) =
                    tokio::join!(self.store.get_user(m.business), self.store.team_settings(m.business));
                let business = business?.map(|b| b.business_name.unwrap_or(b.name));
                let name = match business {
                    Some(b) => format!("{} ({b})", user.name),
                    None => user.name,
                };
                let seat = Seat { business: m.business, role: Some(m.role), agents_see_all: settings?.agents_see_all };
                Ok(Actor { principal, name, invited_by: None, seat: Some(seat) })
            }
            Principal::Customer { id } => {
                let c = self.store.get_customer(id).await?;
                let c = c.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?;
                Ok(Actor { principal, name: c.name, invited_by: Some(c.invited_by), seat: None })
            }
        }
    }
}
