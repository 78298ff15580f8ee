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

pub mod views;
pub mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use tracing::instrument;

use crate::auth::{Access, Principal, can_reach_customer};
use crate::bus::{Bus, Envelope, EventKind, Topic};
use crate::domain::{
    Attachment, AttachmentInput, ClientMessageId, Conversation, ConversationId, Customer, CustomerId, MAX_ATTACHMENTS,
    Message, MessageBody, MessageId, Side, UploadId, User, UserId,
};
use crate::files::{FileError, Files, Upload, Variant};
use crate::presence::Presence;
use crate::store::parties::PartiesCache;
use crate::store::{
    ActivityCursor, Appended, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery, NewMessage,
    Participants, Party, ReadOutcome, Store, StoreError,
};
use views::{ConversationView, Counterpart, CustomerView, MessageView};

/// Default and maximum page sizes.
pub const MAX_CONVERSATIONS_PAGE: usize = 200;
pub const MAX_MESSAGES_PAGE: usize = 500;
pub const MAX_CUSTOMERS_PAGE: usize = 200;
/// At most this many customers are considered when a conversation search matches by name.
const SEARCH_CUSTOMER_CAP: usize = 1000;
/// Characters of a message shown in a notification.
pub const PREVIEW_CHARS: usize = 100;
/// How long a sender may edit or delete a message, unless configured otherwise.
pub const DEFAULT_EDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Why a call failed. Each variant maps to one HTTP status and one socket code.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 401: the token is fine but names no account we know.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: authenticated, but this role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: does not exist, or is not visible to the caller.
    #[error("{0}")]
    NotFound(String),
    /// 400: the input is malformed.
    #[error("{0}")]
    Invalid(String),
    /// 413: an upload over the size limit.
    #[error("{0}")]
    TooLarge(String),
    /// 415: a file of a type not accepted.
    #[error("{0}")]
    UnsupportedType(String),
    /// 501: a feature this server is not configured for (file storage).
    #[error("{0}")]
    Disabled(String),
    /// 409: the change clashes with existing data (a quick reply's shortcut).
    #[error("{0}")]
    Conflict(String),
    /// 503 when the store is unreachable, 500 otherwise.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ServiceError {
    /// A stable machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::NotFound(_) => "NOT_FOUND",
            Self::Invalid(_) => "VALIDATION_ERROR",
            Self::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            Self::UnsupportedType(_) => "UNSUPPORTED_MEDIA_TYPE",
            Self::Disabled(_) => "NOT_CONFIGURED",
            Self::Conflict(_) => "CONFLICT",
            Self::Store(StoreError::Unavailable(_)) => "SERVICE_UNAVAILABLE",
            Self::Store(StoreError::Other(_)) => "INTERNAL_ERROR",
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl From<FileError> for ServiceError {
    fn from(e: FileError) -> Self {
        match e {
            FileError::TooLarge { .. } => Self::TooLarge(e.to_string()),
            FileError::Type(m) => Self::UnsupportedType(m),
            FileError::Empty | FileError::BadImage(_) | FileError::Client(_) => Self::Invalid(e.to_string()),
            FileError::Missing => Self::NotFound("file not found".into()),
            FileError::Storage(cause) => Self::Store(StoreError::Unavailable(cause.context("file storage"))),
        }
    }
}

/// How an upload appears in a message: the seed's fields, its id, and our URLs.
fn attachment_of(files: &Files, u: &Upload) -> Attachment {
    Attachment {
        id: Some(u.id.to_hex()),
        url: files.url(u.id, Variant::Content),
        name: u.name.clone(),
        mime_type: u.mime_type.clone(),
        size: u.size.unwrap_or(0),
        thumbnail_url: u.has_thumbnail.then(|| files.url(u.id, Variant::Thumbnail)),
    }
}

fn shortcut_taken(s: &crate::domain::Shortcut) -> ServiceError {
    ServiceError::Conflict(format!("you already have a quick reply /{}", s.as_str()))
}

fn files_disabled() -> ServiceError {
    ServiceError::Disabled(
        "file uploads are not configured on this server (set OMNIBIZ_S3_BUCKET, or OMNIBIZ_FILES_DIR)".into(),
    )
}

/// The personal topic of the participant who did not send.
fn recipient_topic(sender: Side, owner: UserId, customer: CustomerId) -> Topic {
    Topic::Principal(match sender {
        Side::Owner => Party::Customer(customer),
        Side::Customer => Party::Owner(owner),
    })
}

/// The `notification` event's payload.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification<'a> {
    conversation_id: String,
    from: &'a str,
    from_id: &'a str,
    sender_role: &'a str,
    preview: &'a str,
    message_id: &'a str,
    seq: i64,
}

fn not_found_conversation() -> ServiceError {
    ServiceError::NotFound("conversation not found".into())
}

/// An authenticated principal with its stored record.
#[derive(Debug, Clone)]
pub struct Actor {
    pub principal: Principal,
    pub name: String,
    /// For a customer: the business owner who invited them.
    pub invited_by: Option<UserId>,
}

impl Actor {
    pub fn side(&self) -> Side {
        self.principal.side()
    }
}

/// A send request, already parsed into domain types.
#[derive(Debug, Clone)]
pub struct SendCommand {
    pub conversation_id: ConversationId,
    pub body: MessageBody,
    pub attachments: Vec<AttachmentInput>,
    pub client_message_id: Option<ClientMessageId>,
}

impl SendCommand {
    /// Validates raw input (shared by REST and socket handlers).
    pub fn parse(
        conversation_id: &str,
        content: &str,
        attachments: Vec<AttachmentInput>,
        client_message_id: Option<&str>,
    ) -> ServiceResult<Self> {
        let conversation_id = conversation_id
            .parse()
            .map_err(|e: crate::domain::InvalidId| ServiceError::Invalid(format!("conversationId: {e}")))?;
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if attachments.len() > MAX_ATTACHMENTS {
            return Err(ServiceError::Invalid(format!("at most {MAX_ATTACHMENTS} attachments per message")));
        }
        for a in &attachments {
            match a {
                AttachmentInput::Link(l) => l.clone().into_attachment().validate().map_err(ServiceError::Invalid)?,
                AttachmentInput::Upload { id } => {
                    id.parse::<UploadId>().map_err(|e| ServiceError::Invalid(format!("attachment id: {e}")))?;
                }
            }
        }
        let client_message_id =
            client_message_id.map(ClientMessageId::parse).transpose().map_err(ServiceError::Invalid)?;
        Ok(Self { conversation_id, body, attachments, client_message_id })
    }
}

/// Outcome of a send.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message as clients see it ([`MessageView`]), encoded to
    /// JSON once: what the bus carried, reused by responses and acks.
    pub json: Box<serde_json::value::RawValue>,
    /// False when this was a retry of an already stored `clientMessageId`.
    pub created: bool,
}

/// Outcome of a mark-read.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadReceipt {
    pub conversation_id: String,
    pub up_to_seq: i64,
    pub unread_count: i64,
}

/// Paging for the conversation list.
#[derive(Debug, Clone, Default)]
pub struct ConversationPage {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub q: Option<String>,
}

/// Paging for messages of one conversation.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePage {
    pub limit: Option<usize>,
    pub before: Option<i64>,
    pub after: Option<i64>,
}

/// One message found by a search, with where it is and why it matched.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub message: MessageView,
    pub conversation_id: String,
    /// The other side's name, as in the conversation list.
    pub conversation_name: String,
    /// Up to about 180 characters around the first match (`…` where cut).
    pub snippet: String,
    /// The matches in `snippet`, as character ranges (never markup: the text is the user's).
    pub highlights: Vec<crate::domain::search::Highlight>,
}

/// A quick reply as its owner sees it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuickReplyView {
    pub id: String,
    /// Typed as `/shortcut`; 1–32 of `a-z`, `0-9`, `-`, `_`.
    #[schema(value_type = String, pattern = "^[a-z0-9_-]{1,32}$")]
    pub shortcut: crate::domain::Shortcut,
    pub content: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&crate::domain::QuickReply> for QuickReplyView {
    fn from(r: &crate::domain::QuickReply) -> Self {
        Self {
            id: r.id.to_hex(),
            shortcut: r.shortcut.clone(),
            content: r.content.clone(),
            created_at: views::iso(r.created_at),
            updated_at: views::iso(r.updated_at),
        }
    }
}

/// Most quick replies one business owner keeps.
pub const MAX_QUICK_REPLIES: usize = 200;

/// Most search results per page.
pub const MAX_SEARCH_PAGE: usize = 50;

/// Paging for the customer list.
#[derive(Debug, Clone, Default)]
pub struct CustomerPage {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub q: Option<String>,
}

fn page_size(asked: Option<usize>, max: usize) -> ServiceResult<usize> {
    match asked {
        None => Ok(max),
        Some(0) => Err(ServiceError::Invalid("limit must be at least 1".into())),
        Some(n) => Ok(n.min(max)),
    }
}

fn encode_activity_cursor(c: &Conversation) -> String {
    format!("{}_{}", c.activity_time().timestamp_millis(), c.id)
}

fn decode_activity_cursor(s: &str) -> ServiceResult<ActivityCursor> {
    let bad = || ServiceError::Invalid("cursor is malformed".into());
    let (ms, id) = s.split_once('_').ok_or_else(bad)?;
    let ms: i64 = ms.parse().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(bad)?;
    Ok(ActivityCursor { at, id: id.parse().map_err(|_| bad())? })
}

fn matches_term(term: &str, fields: &[&str]) -> bool {
    let t = term.to_lowercase();
    fields.iter().any(|f| f.to_lowercase().contains(&t))
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
    hook_guard: crate::hooks::guard::Guard,
    /// Where uploads go; `None` when file storage is not configured.
    files: Option<Arc<Files>>,
    /// How long after sending a sender may edit or delete; `None`: always.
    edit_window: Option<std::time::Duration>,
    /// Accounts behind tokens (name, inviting owner), for a short TTL.
    accounts: Option<moka::sync::Cache<Principal, Arc<AccountEntry>>>,
    /// Each conversation's two participants, which never change.
    participants: Arc<PartiesCache>,
}

/// What [`Messaging::actor`] keeps of an account.
#[derive(Debug)]
struct AccountEntry {
    name: String,
    invited_by: Option<UserId>,
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
        let hook_guard = crate::hooks::guard::Guard { allow_private: false };
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

    /// File storage, when configured.
    pub fn files(&self) -> Option<&Arc<Files>> {
        self.files.as_ref()
    }

    /// Lets webhook endpoints point at private addresses (`webhook_allow_private`).
    #[must_use]
    pub fn with_hook_guard(mut self, guard: crate::hooks::guard::Guard) -> Self {
        self.hook_guard = guard;
        self
    }

    pub fn presence(&self) -> &Arc<dyn Presence> {
        &self.presence
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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
        if let Some(hit) = self.accounts.as_ref().and_then(|c| c.get(&principal)) {
            return Ok(Actor { principal, name: hit.name.clone(), invited_by: hit.invited_by });
        }
        let actor = self.read_actor(principal).await?;
        if let Some(cache) = &self.accounts {
            let entry = AccountEntry { name: actor.name.clone(), invited_by: actor.invited_by };
            cache.insert(principal, Arc::new(entry));
        }
        Ok(actor)
    }

    async fn read_actor(&self, principal: Principal) -> ServiceResult<Actor> {
        match principal {
            Principal::User { id, .. } => {
                let user = self.store.get_user(id).await?;
                let user = user.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?;
                Ok(Actor { principal, name: user.name, invited_by: None })
            }
            Principal::Customer { id } => {
                let c = self.store.get_customer(id).await?;
                let c = c.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?;
                Ok(Actor { principal, name: c.name, invited_by: Some(c.invited_by) })
            }
        }
    }

    /// Publishes after a stored change; failures are logged and counted only.
    /// `source` names the connection the change came from (see [`Envelope::source`]).
    pub async fn publish(
        &self,
        topic: Topic,
        kind: EventKind,
        conv: Option<ConversationId>,
        payload: serde_json::Value,
        source: Option<&str>,
    ) {
        self.publish_envelope(topic, Envelope::new(kind, conv, payload), source).await;
    }

    /// [`Messaging::publish`] with a payload already encoded.
    pub async fn publish_raw(
        &self,
        topic: Topic,
        kind: EventKind,
        conv: Option<ConversationId>,
        payload: Box<serde_json::value::RawValue>,
        source: Option<&str>,
    ) {
        self.publish_envelope(topic, Envelope::from_raw(kind, conv, payload), source).await;
    }

    async fn publish_envelope(&self, topic: Topic, mut env: Envelope, source: Option<&str>) {
        env.origin = Some(self.origin.to_string());
        env.source = source.map(str::to_owned);
        if let Err(e) = self.bus.publish(&topic, &env).await {
            metrics::counter!("bus_publish_errors_total").increment(1);
            tracing::warn!(error.cause_chain = ?e, channel = %topic.channel(), "publish failed; clients will recover by seq");
        }
    }

    /// The conversation, if `actor` participates in it; else not found.
    pub async fn visible_conversation(&self, actor: &Actor, id: ConversationId) -> ServiceResult<(Conversation, Side)> {
        let conv = self.store.get_conversation(id).await?.ok_or_else(not_found_conversation)?;
        self.participants.remember(&conv);
        match Access::of(&actor.principal, &conv) {
            Access::Participant(side) => Ok((conv, side)),
            Access::Hidden => Err(not_found_conversation()),
        }
    }

    async fn views(&self, actor: &Actor, convs: &[Conversation]) -> ServiceResult<Vec<ConversationView>> {
        let side = actor.side();
        let counterparts: Vec<(Counterpart, String)> = match side {
            Side::Owner => {
                let ids: Vec<CustomerId> = convs.iter().map(|c| c.customer_id).collect();
                let found: HashMap<CustomerId, Customer> =
                    self.store.customers_by_ids(&ids).await?.into_iter().map(|c| (c.id, c)).collect();
                convs
                    .iter()
                    .map(|c| {
                        let cp = found.get(&c.customer_id).map_or_else(Counterpart::unknown, Counterpart::from);
                        (cp, format!("customer:{}", c.customer_id))
                    })
                    .collect()
            }
            Side::Customer => {
                let mut owners: HashMap<UserId, Option<User>> = HashMap::new();
                for c in convs {
                    if let std::collections::hash_map::Entry::Vacant(slot) = owners.entry(c.business_owner_id) {
                        slot.insert(self.store.get_user(c.business_owner_id).await?);
                    }
                }
                convs
                    .iter()
                    .map(|c| {
                        let owner = owners.get(&c.business_owner_id).and_then(Option::as_ref);
                        (
                            owner.map_or_else(Counterpart::unknown, Counterpart::from),
                            format!("user:{}", c.business_owner_id),
                        )
                    })
                    .collect()
            }
        };
        let rooms: Vec<String> = counterparts.iter().map(|(_, r)| r.clone()).collect();
        let online = self.presence.online(&rooms).await;
        Ok(convs
            .iter()
            .zip(counterparts.iter())
            .zip(online)
            .map(|((c, (cp, _)), on)| ConversationView::new(c, side, cp, on))
            .collect())
    }

    /// The caller's conversations, most recent activity first.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn list_conversations(
        &self,
        actor: &Actor,
        page: ConversationPage,
    ) -> ServiceResult<(Vec<ConversationView>, Option<String>)> {
        let limit = page_size(page.limit, MAX_CONVERSATIONS_PAGE)?;
        let before = page.cursor.as_deref().map(decode_activity_cursor).transpose()?;
        let term = crate::domain::search_term(page.q.as_deref());
        let (party, customers) = match actor.principal {
            Principal::User { id, .. } => {
                let customers = match &term {
                    Some(t) => {
                        let q =
                            CustomerQuery { owner: id, q: Some(t.clone()), before: None, limit: SEARCH_CUSTOMER_CAP };
                        Some(self.store.list_customers(&q).await?.into_iter().map(|c| c.id).collect())
                    }
                    None => None,
                };
                (Party::Owner(id), customers)
            }
            Principal::Customer { id } => {
                if let (Some(t), Some(owner)) = (&term, actor.invited_by) {
                    let user = self.store.get_user(owner).await?;
                    let hit = user.is_some_and(|u| {
                        let biz = u.business_name.unwrap_or_default();
                        matches_term(t, &[&u.name, &biz, &u.email, u.phone.as_deref().unwrap_or("")])
                    });
                    if !hit {
                        return Ok((Vec::new(), None));
                    }
                }
                (Party::Customer(id), None)
            }
        };
        let convs = self.store.list_conversations(&ConversationQuery { party, customers, before, limit }).await?;
        let next = (convs.len() == limit).then(|| convs.last().map(encode_activity_cursor)).flatten();
        Ok((self.views(actor, &convs).await?, next))
    }

    /// Create-or-get. A business owner names the customer; a customer gets the
    /// conversation with the owner who invited them. Returns `true` when created.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn open_conversation(
        &self,
        actor: &Actor,
        customer: Option<CustomerId>,
    ) -> ServiceResult<(ConversationView, bool)> {
        let not_found_owner = || ServiceError::NotFound("business owner not found".into());
        let (owner, customer) = match actor.principal {
            Principal::User { id, .. } => {
                let cid = customer.ok_or_else(|| ServiceError::Invalid("customerId is required".into()))?;
                let c = self.store.get_customer(cid).await?;
                match c {
                    Some(c) if can_reach_customer(&actor.principal, &c) => {
                        (self.store.get_user(id).await?.ok_or_else(not_found_owner)?, c)
                    }
                    _ => return Err(ServiceError::NotFound("customer not found".into())),
                }
            }
            Principal::Customer { id } => {
                let owner = actor.invited_by.ok_or_else(not_found_owner)?;
                let owner = self.store.get_user(owner).await?.ok_or_else(not_found_owner)?;
                let me = self.store.get_customer(id).await?;
                (owner, me.ok_or_else(|| ServiceError::Unauthorized("account not found".into()))?)
            }
        };
        let who = Participants::of(&owner, &customer);
        let (conv, created) = self.store.get_or_create_conversation(&who, Utc::now()).await?;
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        Ok((view, created))
    }

    /// One conversation and a page of its messages, oldest → newest. The
    /// boolean says whether more messages exist in the paging direction.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn conversation_messages(
        &self,
        actor: &Actor,
        id: ConversationId,
        page: MessagePage,
    ) -> ServiceResult<(ConversationView, Vec<MessageView>, bool)> {
        let limit = page_size(page.limit, MAX_MESSAGES_PAGE)?;
        let (conv, _) = self.visible_conversation(actor, id).await?;
        let q = MessageQuery { conversation_id: id, before: page.before, after: page.after, limit: limit + 1 };
        let mut msgs = self.store.list_messages(&q).await?;
        let more = msgs.len() > limit;
        if more {
            if page.after.is_some() {
                msgs.truncate(limit);
            } else {
                msgs.remove(0);
            }
        }
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        Ok((view, msgs.iter().map(MessageView::from).collect(), more))
    }

    /// Messages after `after_seq`, oldest first, at most `limit` (recovery on rejoin).
    pub async fn messages_after(
        &self,
        actor: &Actor,
        id: ConversationId,
        after_seq: i64,
        limit: usize,
    ) -> ServiceResult<Vec<MessageView>> {
        self.visible_conversation(actor, id).await?;
        self.stored_after(id, after_seq, limit).await
    }

    /// Stored messages after `after_seq`, oldest first, with no visibility
    /// check: for a gateway re-fetching what its already admitted members
    /// may have missed while the bus was away. Never expose it to a client.
    pub async fn stored_after(
        &self,
        id: ConversationId,
        after_seq: i64,
        limit: usize,
    ) -> ServiceResult<Vec<MessageView>> {
        let q = MessageQuery { conversation_id: id, before: None, after: Some(after_seq), limit };
        Ok(self.store.list_messages(&q).await?.iter().map(MessageView::from).collect())
    }

    /// Stores a message (once per `clientMessageId`) and publishes it.
    pub async fn send(&self, actor: &Actor, cmd: SendCommand) -> ServiceResult<Sent> {
        self.send_from(actor, cmd, None, None).await
    }

    /// [`Messaging::send`] from a socket: `source` keeps the gateway from
    /// echoing it back; `parties`, the conversation's owner and customer when
    /// the caller already knows them (a gateway, from the room its socket
    /// joined), spare their lookup.
    ///
    /// Two database round trips in the common case (the store's `seq` update,
    /// which also checks the sender may send here, and the insert) and one
    /// Redis round trip (the message and the notification go out together).
    /// The account behind the token and the conversation's participants
    /// come from caches; the message is encoded to JSON once.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %cmd.conversation_id))]
    pub async fn send_from(
        &self,
        actor: &Actor,
        cmd: SendCommand,
        source: Option<&str>,
        parties: Option<(UserId, CustomerId)>,
    ) -> ServiceResult<Sent> {
        let conv = cmd.conversation_id;
        let (owner, customer) = match parties {
            Some(p) => p,
            None => self.participants.get(&*self.store, conv).await?.ok_or_else(not_found_conversation)?,
        };
        let side = match Access::between(&actor.principal, owner, customer) {
            Access::Participant(side) => side,
            Access::Hidden => return Err(not_found_conversation()),
        };
        if cmd.attachments.iter().any(|a| matches!(a, AttachmentInput::Upload { .. })) {
            // Uploads are claimed before the append: only for a conversation
            // that takes messages now, so a refused send strands no file.
            self.sendable(actor, conv).await?;
        }
        let preview = cmd.body.preview(PREVIEW_CHARS);
        let cmid = cmd.client_message_id.map(|c| c.as_str().to_owned());
        let (attachments, uploads) = self.resolve_attachments(actor, conv, cmd.attachments, cmid.as_deref()).await?;
        let new = NewMessage {
            conversation_id: conv,
            sender_id: actor.principal.id_hex(),
            sender_side: side,
            sender_name: actor.name.clone(),
            content: cmd.body.into_string(),
            attachments,
            client_message_id: cmid,
            created_at: Utc::now(),
        };
        let Some(appended) = self.store.append_message(new).await? else {
            // Refused by the store's own check: read the conversation to say why.
            self.sendable(actor, conv).await?;
            return Err(ServiceError::Conflict("the conversation changed while sending; send again".into()));
        };
        if !uploads.is_empty() {
            // Only what the stored message refers to (a retry may name other files).
            let stored = appended.message();
            let kept: Vec<UploadId> = uploads
                .into_iter()
                .filter(|u| stored.attachments.iter().any(|a| a.id.as_deref() == Some(u.to_hex().as_str())))
                .collect();
            if let Err(e) = self.store.confirm_uploads(&kept, stored.id).await {
                // The sweeper finds the message that refers to them and confirms them later.
                tracing::warn!(error.cause_chain = ?e, "confirming uploads failed; the sweeper will");
            }
        }
        let created = matches!(appended, Appended::Created(_));
        let message = MessageView::from(appended.message());
        // The one encoding of this message: the bus envelope, the REST
        // response, the sender's ack and `message_sent` all reuse it.
        let json = views::raw_json(&message);
        if created {
            metrics::counter!("messages_stored_total").increment(1);
            let recipient = recipient_topic(side, owner, customer);
            self.publish_message(conv, recipient, side, &message, json.clone(), &actor.name, &preview, source).await;
        } else {
            // A retry of a stored message. Its first publish may never have
            // happened (the process died between store and publish): publish
            // it again. Gateways deliver each stored seq once per room, so a
            // message that did go out is not delivered twice. The
            // notification is not repeated: nothing on the way dedupes it.
            self.publish_raw(Topic::Conversation(conv), EventKind::MessageCreated, Some(conv), json.clone(), source)
                .await;
        }
        Ok(Sent { json, created })
    }

    /// The conversation, if `actor` may send to it now: 404 when not theirs, 403 when blocked.
    async fn sendable(&self, actor: &Actor, id: ConversationId) -> ServiceResult<(Conversation, Side)> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        if conv.status == crate::domain::ConversationStatus::Blocked {
            return Err(ServiceError::Forbidden("this conversation is blocked".into()));
        }
        Ok((conv, side))
    }

    /// Turns a send's attachments into stored ones: links as given; uploads
    /// claimed for this send (the sender's own, to this conversation, not
    /// attached elsewhere) and described from their records.
    async fn resolve_attachments(
        &self,
        actor: &Actor,
        conv: ConversationId,
        inputs: Vec<AttachmentInput>,
        cmid: Option<&str>,
    ) -> ServiceResult<(Vec<Attachment>, Vec<UploadId>)> {
        let mut out = Vec::with_capacity(inputs.len());
        let mut uploads = Vec::new();
        // A retried send (same clientMessageId) may claim its uploads again.
        // Built only when there is an upload to claim: most sends have none.
        let mut key: Option<String> = None;
        for input in inputs {
            match input {
                AttachmentInput::Link(link) => out.push(link.into_attachment()),
                AttachmentInput::Upload { id } => {
                    let files = self.files.as_ref().ok_or_else(files_disabled)?;
                    let uid: UploadId = id.parse().map_err(|e| ServiceError::Invalid(format!("attachment id: {e}")))?;
                    if uploads.contains(&uid) {
                        return Err(ServiceError::Invalid(format!("attachment {uid} is listed twice")));
                    }
                    let key = key.get_or_insert_with(|| match cmid {
                        Some(c) => format!("cmid:{c}"),
                        None => format!("once:{}", MessageId::new()),
                    });
                    let upload = self.store.claim_upload(uid, conv, &actor.principal.id_hex(), key).await?;
                    let upload = upload.ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "attachment {uid} is not a finished upload of yours to this conversation, \
                             or it is attached to another message"
                        ))
                    })?;
                    out.push(attachment_of(files, &upload));
                    uploads.push(uid);
                }
            }
        }
        Ok((out, uploads))
    }

    /// Streams a file into storage for a conversation the caller is in, and
    /// returns the attachment to put into a send (`{id}` is enough).
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %conversation))]
    pub async fn upload<S, E>(
        &self,
        actor: &Actor,
        conversation: ConversationId,
        file_name: &str,
        body: S,
    ) -> ServiceResult<Attachment>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let files = self.files.as_ref().ok_or_else(files_disabled)?;
        let (conv, side) = self.sendable(actor, conversation).await?;
        let mut upload = Upload {
            id: UploadId::new(),
            conversation_id: conv.id,
            uploader_id: actor.principal.id_hex(),
            uploader_side: side,
            name: Files::clean_name(file_name),
            mime_type: "application/octet-stream".into(),
            size: None,
            has_thumbnail: false,
            created_at: Utc::now(),
            claim: None,
            message_id: None,
            confirmed: false,
        };
        // The record first: an object never exists without a record to clean it up by.
        self.store.insert_upload(&upload).await?;
        let stored = match files.store(upload.id, body).await {
            Ok(s) => s,
            Err(e) => {
                if let Err(e) = self.store.delete_upload(upload.id).await {
                    tracing::warn!(error.cause_chain = ?e, "removing a failed upload's record; the sweeper will");
                }
                metrics::counter!("uploads_refused_total").increment(1);
                return Err(e.into());
            }
        };
        self.store.finish_upload(upload.id, &stored.mime_type, stored.size, stored.has_thumbnail).await?;
        metrics::counter!("uploads_stored_total").increment(1);
        upload.mime_type = stored.mime_type;
        upload.size = Some(stored.size);
        upload.has_thumbnail = stored.has_thumbnail;
        Ok(attachment_of(files, &upload))
    }

    /// An upload the caller may download (a participant of its conversation), with its storage.
    pub async fn visible_upload(&self, actor: &Actor, id: UploadId) -> ServiceResult<(Upload, Arc<Files>)> {
        let files = self.files.clone().ok_or_else(files_disabled)?;
        let not_found = || ServiceError::NotFound("file not found".into());
        let upload = self.store.get_upload(id).await?.filter(|u| u.size.is_some()).ok_or_else(not_found)?;
        self.visible_conversation(actor, upload.conversation_id).await.map_err(|_| not_found())?;
        Ok((upload, files))
    }

    /// An upload by id for a signed link (the signature already checked).
    pub async fn upload_by_link(&self, id: UploadId) -> ServiceResult<(Upload, Arc<Files>)> {
        let files = self.files.clone().ok_or_else(files_disabled)?;
        let upload = self.store.get_upload(id).await?.filter(|u| u.size.is_some());
        Ok((upload.ok_or_else(|| ServiceError::NotFound("file not found".into()))?, files))
    }

    /// The caller's own message, within the edit window.
    async fn own_recent_message(
        &self,
        actor: &Actor,
        id: MessageId,
        verb: &str,
    ) -> ServiceResult<(Message, Conversation)> {
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(id).await?.ok_or_else(not_found)?;
        let (conv, _) = self.visible_conversation(actor, msg.conversation_id).await.map_err(|_| not_found())?;
        if msg.sender_id != actor.principal.id_hex() {
            return Err(ServiceError::Forbidden(format!("only its sender can {verb} a message")));
        }
        if let Some(window) = self.edit_window {
            let age = (Utc::now() - msg.created_at).to_std().unwrap_or_default();
            if age > window {
                return Err(ServiceError::Forbidden(format!(
                    "a message can only be {verb}ed within {} minutes of sending it",
                    window.as_secs().div_ceil(60)
                )));
            }
        }
        Ok((msg, conv))
    }

    /// The sender replaces their message's content; the room gets `message_updated`.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %id))]
    pub async fn edit_message(&self, actor: &Actor, id: MessageId, content: &str) -> ServiceResult<MessageView> {
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let (_, conv) = self.own_recent_message(actor, id, "edit").await?;
        let edited = self.store.edit_message(id, conv.id, body.as_str(), Utc::now()).await?;
        let edited = edited.ok_or_else(|| ServiceError::NotFound("message not found".into()))?;
        let view = MessageView::from(&edited);
        let payload = serde_json::to_value(&view).unwrap_or_default();
        self.publish(Topic::Conversation(conv.id), EventKind::MessageUpdated, Some(conv.id), payload, None).await;
        Ok(view)
    }

    /// The sender deletes their message: its content and files are removed
    /// from storage, the room gets `message_deleted`.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %id))]
    pub async fn delete_message(&self, actor: &Actor, id: MessageId) -> ServiceResult<MessageView> {
        let (msg, conv) = self.own_recent_message(actor, id, "delete").await?;
        let uploads: Vec<UploadId> = msg.attachments.iter().filter_map(|a| a.id.as_deref()?.parse().ok()).collect();
        // Handed back to the sweeper first: if this process dies midway, the
        // files are removed once no message refers to them.
        if !uploads.is_empty() {
            self.store.unconfirm_uploads(&uploads).await?;
        }
        let deleted = self.store.delete_message(id, conv.id, Utc::now()).await?;
        let deleted = deleted.ok_or_else(|| ServiceError::NotFound("message not found".into()))?;
        if let Some(files) = &self.files {
            for u in &uploads {
                let removed = match files.delete(*u).await {
                    Ok(()) => self.store.delete_upload(*u).await.map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::Error::from(e)),
                };
                if let Err(e) = removed {
                    tracing::warn!(error.cause_chain = ?e, upload = %u, "removing a deleted message's file; the sweeper will");
                }
            }
        }
        let payload = json!({"conversationId": conv.id.to_hex(), "messageId": id.to_hex(), "seq": deleted.seq});
        self.publish(Topic::Conversation(conv.id), EventKind::MessageDeleted, Some(conv.id), payload, None).await;
        Ok(MessageView::from(&deleted))
    }

    /// Finds the caller's messages (an owner's in all their conversations, a
    /// customer's in theirs): words match as prefixes, `"quoted words"` as
    /// phrases, every term must match. Newest first; deleted messages never.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn search_messages(
        &self,
        actor: &Actor,
        q: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> ServiceResult<(Vec<SearchHit>, Option<String>)> {
        use crate::domain::search::{SearchQuery, snippet};
        let query = SearchQuery::parse(q).map_err(|e| ServiceError::Invalid(format!("q: {e}")))?;
        let limit = page_size(limit, MAX_SEARCH_PAGE)?;
        if query.terms.is_empty() {
            return Ok((Vec::new(), None));
        }
        let bad = || ServiceError::Invalid("cursor is malformed".into());
        let before = match cursor {
            None => None,
            Some(c) => {
                let (ms, id) = c.split_once('_').ok_or_else(bad)?;
                let at = DateTime::<Utc>::from_timestamp_millis(ms.parse().map_err(|_| bad())?).ok_or_else(bad)?;
                Some((at, id.parse::<MessageId>().map_err(|_| bad())?))
            }
        };
        let party = match actor.principal {
            Principal::User { id, .. } => Party::Owner(id),
            Principal::Customer { id } => Party::Customer(id),
        };
        // Stores may return near misses (the final check is here): fetch a few more.
        let fetch = limit * 2;
        let candidates = self.store.search_messages(party, &query, before, fetch).await?;
        let position = |m: &Message| format!("{}_{}", m.created_at.timestamp_millis(), m.id);
        let mut found: Vec<(Message, String, Vec<crate::domain::search::Highlight>)> = Vec::new();
        let mut next = None;
        for m in &candidates {
            if let Some((text, marks)) = snippet(&m.content, &query) {
                found.push((m.clone(), text, marks));
                if found.len() == limit {
                    next = Some(position(m));
                    break;
                }
            }
        }
        if next.is_none() && candidates.len() == fetch {
            next = candidates.last().map(position);
        }
        // Name each result's conversation as the conversation list does.
        let mut convs: Vec<Conversation> = Vec::new();
        for (m, _, _) in &found {
            if !convs.iter().any(|c| c.id == m.conversation_id)
                && let Some(c) = self.store.get_conversation(m.conversation_id).await?
            {
                convs.push(c);
            }
        }
        let views = self.views(actor, &convs).await?;
        let hits = found
            .into_iter()
            .map(|(m, snippet, highlights)| {
                let name = views.iter().find(|v| v.id == m.conversation_id.to_hex()).map(|v| v.name.clone());
                SearchHit {
                    conversation_id: m.conversation_id.to_hex(),
                    conversation_name: name.unwrap_or_default(),
                    message: MessageView::from(&m),
                    snippet,
                    highlights,
                }
            })
            .collect();
        Ok((hits, next))
    }

    fn replies_owner(actor: &Actor) -> ServiceResult<UserId> {
        match actor.principal {
            Principal::User { id, .. } => Ok(id),
            Principal::Customer { .. } => {
                Err(ServiceError::Forbidden("only business owners have quick replies".into()))
            }
        }
    }

    /// The owner's quick replies, by shortcut.
    pub async fn list_quick_replies(&self, actor: &Actor) -> ServiceResult<Vec<QuickReplyView>> {
        let owner = Self::replies_owner(actor)?;
        Ok(self.store.list_quick_replies(owner).await?.iter().map(QuickReplyView::from).collect())
    }

    /// Saves a new quick reply; 409 when the shortcut is taken.
    pub async fn create_quick_reply(
        &self,
        actor: &Actor,
        shortcut: &str,
        content: &str,
    ) -> ServiceResult<QuickReplyView> {
        let owner = Self::replies_owner(actor)?;
        let shortcut = crate::domain::Shortcut::parse(shortcut).map_err(ServiceError::Invalid)?;
        let body = MessageBody::parse(content).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        if self.store.list_quick_replies(owner).await?.len() >= MAX_QUICK_REPLIES {
            return Err(ServiceError::Invalid(format!("at most {MAX_QUICK_REPLIES} quick replies; delete one first")));
        }
        let now = Utc::now();
        let reply = crate::domain::QuickReply {
            id: crate::domain::QuickReplyId::new(),
            owner,
            shortcut,
            content: body.into_string(),
            created_at: now,
            updated_at: now,
        };
        if !self.store.insert_quick_reply(&reply).await? {
            return Err(shortcut_taken(&reply.shortcut));
        }
        Ok(QuickReplyView::from(&reply))
    }

    async fn own_quick_reply(
        &self,
        actor: &Actor,
        id: crate::domain::QuickReplyId,
    ) -> ServiceResult<crate::domain::QuickReply> {
        let owner = Self::replies_owner(actor)?;
        let found = self.store.get_quick_reply(id).await?.filter(|r| r.owner == owner);
        found.ok_or_else(|| ServiceError::NotFound("quick reply not found".into()))
    }

    /// Changes a quick reply's shortcut and/or content.
    pub async fn update_quick_reply(
        &self,
        actor: &Actor,
        id: crate::domain::QuickReplyId,
        shortcut: Option<&str>,
        content: Option<&str>,
    ) -> ServiceResult<QuickReplyView> {
        let mut reply = self.own_quick_reply(actor, id).await?;
        if let Some(s) = shortcut {
            reply.shortcut = crate::domain::Shortcut::parse(s).map_err(ServiceError::Invalid)?;
        }
        if let Some(c) = content {
            reply.content = MessageBody::parse(c).map_err(|e| ServiceError::Invalid(e.to_string()))?.into_string();
        }
        reply.updated_at = Utc::now();
        match self.store.save_quick_reply(&reply).await? {
            Some(true) => Ok(QuickReplyView::from(&reply)),
            Some(false) => Err(shortcut_taken(&reply.shortcut)),
            None => Err(ServiceError::NotFound("quick reply not found".into())),
        }
    }

    pub async fn delete_quick_reply(&self, actor: &Actor, id: crate::domain::QuickReplyId) -> ServiceResult<()> {
        self.own_quick_reply(actor, id).await?;
        self.store.delete_quick_reply(id).await?;
        Ok(())
    }

    /// The content of the owner's quick reply named by id or shortcut (for a send).
    pub async fn quick_reply_content(&self, actor: &Actor, key: &str) -> ServiceResult<String> {
        let owner = Self::replies_owner(actor)?;
        let found = match key.parse::<crate::domain::QuickReplyId>() {
            Ok(id) => self.store.get_quick_reply(id).await?.filter(|r| r.owner == owner),
            Err(_) => match crate::domain::Shortcut::parse(key) {
                Ok(s) => self.store.find_quick_reply(owner, s.as_str()).await?,
                Err(_) => None,
            },
        };
        Ok(found.ok_or_else(|| ServiceError::NotFound(format!("no quick reply {key:?}")))?.content)
    }

    /// Publishes a newly stored message to its conversation and a
    /// notification to the recipient's personal topic, concurrently: on
    /// Redis the two commands share one round trip (fred pipelines them).
    #[allow(clippy::too_many_arguments)]
    async fn publish_message(
        &self,
        conv: ConversationId,
        recipient: Topic,
        side: Side,
        message: &MessageView,
        json: Box<serde_json::value::RawValue>,
        from: &str,
        preview: &str,
        source: Option<&str>,
    ) {
        let note = Notification {
            conversation_id: conv.to_hex(),
            from,
            from_id: &message.sender_id,
            sender_role: side.role_name(),
            preview,
            message_id: &message.id,
            seq: message.seq,
        };
        let note = views::raw_json(&note);
        tokio::join!(
            self.publish_raw(Topic::Conversation(conv), EventKind::MessageCreated, Some(conv), json, source),
            self.publish_raw(recipient, EventKind::Notification, Some(conv), note, None),
        );
    }

    /// Publishes a message the Node service stored and an adopter just
    /// numbered (see `store::mongo::legacy`), exactly as if we had stored it.
    pub async fn publish_adopted(&self, conv: &Conversation, message: &Message) {
        let view = MessageView::from(message);
        let json = views::raw_json(&view);
        let preview = crate::domain::preview(&message.content, PREVIEW_CHARS);
        let side = message.sender_side;
        let recipient = recipient_topic(side, conv.business_owner_id, conv.customer_id);
        self.publish_message(conv.id, recipient, side, &view, json, &message.sender_name, &preview, None).await;
    }

    async fn read_up_to(&self, actor: &Actor, conv: &Conversation, side: Side, seq: i64) -> ServiceResult<ReadReceipt> {
        let ReadOutcome { read_seq, unread } = self.store.mark_read(conv.id, side, seq).await?;
        let payload = json!({
            "conversationId": conv.id.to_hex(),
            "readerId": actor.principal.id_hex(),
            "upToSeq": read_seq,
        });
        self.publish(Topic::Conversation(conv.id), EventKind::ConversationRead, Some(conv.id), payload, None).await;
        Ok(ReadReceipt { conversation_id: conv.id.to_hex(), up_to_seq: read_seq, unread_count: unread })
    }

    /// Marks `message` and everything before it read for the caller.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %message))]
    pub async fn mark_read(&self, actor: &Actor, message: MessageId) -> ServiceResult<ReadReceipt> {
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(message).await?.ok_or_else(not_found)?;
        let (conv, side) = self.visible_conversation(actor, msg.conversation_id).await.map_err(|_| not_found())?;
        self.read_up_to(actor, &conv, side, msg.seq).await
    }

    /// Marks everything up to `seq` (or the whole conversation) read for the caller.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn mark_read_up_to(
        &self,
        actor: &Actor,
        id: ConversationId,
        seq: Option<i64>,
    ) -> ServiceResult<ReadReceipt> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        let up_to = seq.unwrap_or(conv.last_seq).min(conv.last_seq);
        self.read_up_to(actor, &conv, side, up_to).await
    }

    /// The recipient's device got a message: `sent` → `delivered`, announced
    /// as `message_status`. Only the recipient may say so; repeating is harmless.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), message = %message))]
    pub async fn mark_delivered(&self, actor: &Actor, id: ConversationId, message: MessageId) -> ServiceResult<bool> {
        let (conv, side) = self.visible_conversation(actor, id).await?;
        let not_found = || ServiceError::NotFound("message not found".into());
        let msg = self.store.get_message(message).await?.ok_or_else(not_found)?;
        if msg.conversation_id != conv.id {
            return Err(not_found());
        }
        if msg.sender_side == side {
            return Err(ServiceError::Invalid("only the recipient can confirm delivery".into()));
        }
        let changed = self.store.mark_delivered(message).await?;
        if changed {
            let payload =
                json!({"conversationId": conv.id.to_hex(), "messageId": message.to_hex(), "status": "delivered"});
            self.publish(Topic::Conversation(conv.id), EventKind::MessageStatus, Some(conv.id), payload, None).await;
        }
        Ok(changed)
    }

    /// Status, tags and priority; business owner only.
    #[instrument(skip_all, fields(principal = %actor.principal.room(), conversation = %id))]
    pub async fn update_conversation(
        &self,
        actor: &Actor,
        id: ConversationId,
        patch: ConversationPatch,
    ) -> ServiceResult<ConversationView> {
        let (_, side) = self.visible_conversation(actor, id).await?;
        if side != Side::Owner {
            return Err(ServiceError::Forbidden("only the business owner can change a conversation".into()));
        }
        if let Some(tags) = &patch.tags
            && (tags.len() > 20 || tags.iter().any(|t| t.is_empty() || t.trim() != t || t.chars().count() > 50))
        {
            return Err(ServiceError::Invalid(
                "tags: at most 20, each 1 to 50 characters without leading or trailing spaces".into(),
            ));
        }
        let conv = self.store.update_conversation(id, &patch, Utc::now()).await?.ok_or_else(not_found_conversation)?;
        let view = self.views(actor, std::slice::from_ref(&conv)).await?.remove(0);
        let payload = serde_json::to_value(&view).unwrap_or_default();
        self.publish(Topic::Conversation(id), EventKind::ConversationUpdated, Some(id), payload, None).await;
        Ok(view)
    }

    /// The business owner's customers with stats and chat state, newest first.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn list_customers(
        &self,
        actor: &Actor,
        page: CustomerPage,
    ) -> ServiceResult<(Vec<CustomerView>, Option<String>)> {
        let Principal::User { id: owner, .. } = actor.principal else {
            return Err(ServiceError::Forbidden("only business owners can list customers".into()));
        };
        let limit = page_size(page.limit, MAX_CUSTOMERS_PAGE)?;
        let before = page
            .cursor
            .as_deref()
            .map(|c| c.parse::<CustomerId>().map_err(|_| ServiceError::Invalid("cursor is malformed".into())))
            .transpose()?;
        let q = CustomerQuery { owner, q: crate::domain::search_term(page.q.as_deref()), before, limit };
        let customers = self.store.list_customers(&q).await?;
        let ids: Vec<CustomerId> = customers.iter().map(|c| c.id).collect();
        let convs: HashMap<CustomerId, Conversation> =
            self.store.conversations_with(owner, &ids).await?.into_iter().map(|c| (c.customer_id, c)).collect();
        let rooms: Vec<String> = ids.iter().map(|id| format!("customer:{id}")).collect();
        let online = self.presence.online(&rooms).await;
        let views = customers.iter().zip(online).map(|(c, on)| CustomerView::new(c, convs.get(&c.id), on)).collect();
        let next = (customers.len() == limit).then(|| customers.last().map(|c| c.id.to_hex())).flatten();
        Ok((views, next))
    }
}
