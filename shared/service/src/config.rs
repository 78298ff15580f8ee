//! Typed settings: documented defaults, overridden by an optional TOML file
//! (`OMNIBIZ_CONFIG=path`), then by environment variables. Every key can be
//! set as `OMNIBIZ_<KEY>`; the common ones also under their conventional
//! names (`PORT`, `HOST`, `MONGODB_URI`, `REDIS_URL`, `JWT_SECRET`, …).
//! Secrets are wrapped so they never appear in logs or `Debug` output.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use figment::Figment;
use figment::providers::{Env, Format as _, Toml};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Declares every setting once — name and type, documentation (which names
/// its environment variable), default, and the conventional variable name
/// it is also read from — and generates [`Settings`], its `Default`, and the
/// key lists `load` reads the environment with.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = $default:expr $(, env $plain:literal)?;
    )*) => {
        /// Every setting, with its default (see the `settings!` table below:
        /// grouped by concern, each declared once).
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $($(#[doc = $doc])* pub $name: $ty,)*
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $($name: $default,)* }
            }
        }

        /// Every setting's key (for `OMNIBIZ_<KEY>`).
        const KEYS: &[&str] = &[$(stringify!($name)),*];

        /// Conventional variable names accepted without the `OMNIBIZ_` prefix.
        const PLAIN_ENV: &[&str] = &[$($($plain,)?)*];
    };
}

settings! {
    // --- Listening, logs, browsers and the console.
    /// Address to listen on. `HOST`, default `0.0.0.0`.
    host: IpAddr = IpAddr::from([0, 0, 0, 0]), env "HOST";
    /// Port to listen on. `PORT`, default 5000.
    port: u16 = 5000, env "PORT";
    /// Where the embedded database and generated secret live. `DATA_DIR`, default `./data`.
    data_dir: PathBuf = PathBuf::from("./data"), env "DATA_DIR";
    /// `text` or `json`. `LOG_FORMAT`.
    log_format: LogFormat = LogFormat::Text, env "LOG_FORMAT";
    /// Default log filter when `RUST_LOG` is unset. `LOG_LEVEL`, default `info`.
    log_level: String = "info".into(), env "LOG_LEVEL";
    /// Where to send traces (OTLP over HTTP, e.g. `http://otel-collector:4318`;
    /// `/v1/traces` is added). Unset: no traces. `OMNIBIZ_OTLP_ENDPOINT`.
    otlp_endpoint: Option<String> = None;
    /// The share of traces kept, 0–1 (a trace that arrives sampled, from a
    /// `traceparent` header or a bus envelope, stays sampled).
    /// `OMNIBIZ_TRACE_SAMPLE_RATIO`, default 0.1.
    trace_sample_ratio: f64 = 0.1;
    /// Allowed CORS origins, comma-separated, or `*`. `CORS_ORIGINS`, default `*`.
    cors_origins: String = "*".into(), env "CORS_ORIGINS";
    /// Largest accepted request body in bytes. `OMNIBIZ_BODY_LIMIT_BYTES`, default 65536.
    body_limit_bytes: usize = 64 * 1024;
    /// Per-request timeout in seconds. `OMNIBIZ_REQUEST_TIMEOUT_SECS`, default 30.
    request_timeout_secs: u64 = 30;
    /// Seconds to finish in-flight requests and drain sockets after SIGTERM
    /// (keep it below the pod's terminationGracePeriodSeconds). `OMNIBIZ_SHUTDOWN_GRACE_SECS`, default 20.
    shutdown_grace_secs: u64 = 20;
    /// Serve the web console (owner inbox, customer chat) at `/`.
    /// `OMNIBIZ_CONSOLE`; unset = on for `serve`, off for `api`/`gateway` pods.
    console: Option<bool> = None;
    /// Where the console's Socket.IO client connects, when not to the origin
    /// that served it (e.g. a console on an `api` pod without an ingress in
    /// front). `OMNIBIZ_CONSOLE_SOCKET_URL`; unset = the same origin.
    console_socket_url: Option<String> = None;
    /// Public base URL of the API (`https://chat.example.com`), put in front
    /// of attachment URLs; relative URLs when unset. `OMNIBIZ_PUBLIC_URL`.
    public_url: Option<String> = None;

    // --- Storage (MongoDB; embedded SQLite when unset) and the legacy adopter.
    /// MongoDB connection string. `MONGODB_URI`; unset = embedded SQLite (serve only).
    mongodb_uri: Option<SecretString> = None, env "MONGODB_URI";
    /// Database name when the URI names none. `MONGODB_DATABASE`, default `omnibiz`.
    mongodb_database: Option<String> = None, env "MONGODB_DATABASE";
    /// Milliseconds between the legacy adopter's passes on MongoDB: how
    /// quickly a message the Node service stores during a rolling migration
    /// is numbered and delivered (see docs/migration.md). 0 turns the adopter
    /// off (once the Node service is gone). `OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS`, default 500.
    legacy_adopt_interval_ms: u64 = 500;

    // --- Bus and presence (Redis; in-process when unset).
    /// Redis URL. `REDIS_URL`; unset = in-process bus (serve only).
    redis_url: Option<SecretString> = None, env "REDIS_URL";
    /// Use Redis Cluster sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`). `OMNIBIZ_REDIS_SHARDED`, default false.
    redis_sharded: bool = false;
    /// Seconds a gateway's presence claim lasts without a heartbeat. `OMNIBIZ_PRESENCE_TTL_SECS`, default 30.
    presence_ttl_secs: u64 = 30;

    // --- Authentication.
    /// HS256 secret shared with the main app. `JWT_SECRET`; in `serve` mode a
    /// generated one is kept in the data dir when unset.
    jwt_secret: Option<SecretString> = None, env "JWT_SECRET";
    /// PEM file with an RS256 public key: RS256 tokens are accepted with it. `JWT_PUBLIC_KEY_FILE`.
    jwt_public_key_file: Option<PathBuf> = None, env "JWT_PUBLIC_KEY_FILE";
    /// Comma-separated token algorithms to accept (`HS256`, `RS256`); each
    /// needs its key. Unset: every algorithm whose key is given (HS256 with
    /// `JWT_SECRET`, RS256 with `JWT_PUBLIC_KEY_FILE`). `OMNIBIZ_JWT_ALGORITHMS`.
    jwt_algorithms: Option<String> = None;
    /// When set, tokens must carry this issuer (`iss`). `OMNIBIZ_JWT_ISSUER`.
    jwt_issuer: Option<String> = None;
    /// When set, tokens must name this audience (`aud`). `OMNIBIZ_JWT_AUDIENCE`.
    jwt_audience: Option<String> = None;
    /// Seconds of clock skew allowed on a token's `exp`/`nbf`. `OMNIBIZ_JWT_LEEWAY_SECS`, default 30.
    jwt_leeway_secs: u64 = 30;
    /// Seconds an account read for a token (its name, its inviting owner) is
    /// reused before it is read again; 0 reads it on every request. Accounts
    /// belong to the main app: a renamed or deleted account is seen within
    /// this time. `OMNIBIZ_ACCOUNT_CACHE_SECS`, default 30.
    account_cache_secs: u64 = 30;

    // --- Gateway connections.
    /// Connections one gateway accepts. `OMNIBIZ_MAX_CONNECTIONS`, default 19000.
    max_connections: usize = 19_000;
    /// Outgoing packets queued per socket before it is dropped as slow. `OMNIBIZ_SOCKET_BUFFER`, default 256.
    socket_buffer: usize = 256;
    /// Seconds between Engine.IO pings to each socket (keep it below load
    /// balancers' idle timeouts). `OMNIBIZ_PING_INTERVAL_SECS`, default 25.
    ping_interval_secs: u64 = 25;
    /// Seconds a socket has to answer a ping before it is dropped. `OMNIBIZ_PING_TIMEOUT_SECS`, default 20.
    ping_timeout_secs: u64 = 20;
    /// Seconds over which a stopping gateway spreads its disconnects. `OMNIBIZ_DRAIN_SECS`, default 15.
    drain_secs: u64 = 15;
    /// `host:port` at which other gateways reach this one, to forward
    /// polling requests for the sessions it holds (no load-balancer
    /// affinity needed). In Kubernetes `$(POD_IP):8080`.
    /// `OMNIBIZ_ADVERTISE_ADDR`; unset = the listen address (loopback when it is `0.0.0.0`).
    advertise_addr: Option<String> = None;
    /// Seconds a new connection has to send its Socket.IO CONNECT (sign in);
    /// connections in their handshake count against `max_connections`.
    /// `OMNIBIZ_CONNECT_TIMEOUT_SECS`, default 10.
    connect_timeout_secs: u64 = 10;
    /// Accept a socket token in the `?token=` query parameter (query strings
    /// land in proxy and access logs; `auth.token` and `Authorization` are
    /// always accepted). `OMNIBIZ_ALLOW_QUERY_TOKEN`, default false.
    allow_query_token: bool = false;
    /// Seconds between checks that connected accounts still exist: sockets of
    /// an account deleted in the main app end within this.
    /// `OMNIBIZ_ACCOUNT_CHECK_SECS`, default 30.
    account_check_secs: u64 = 30;
    /// Seconds a client has to send a request's headers; slower connections
    /// are closed. `OMNIBIZ_HEADER_TIMEOUT_SECS`, default 10.
    header_timeout_secs: u64 = 10;
    /// Conversations one socket may have joined at once. `OMNIBIZ_MAX_ROOMS_PER_SOCKET`, default 100.
    max_rooms_per_socket: usize = 100;
    /// Largest message a socket client may send, in bytes (socket.io's
    /// `maxHttpBufferSize`; larger closes the connection). `OMNIBIZ_MAX_PAYLOAD_BYTES`, default 131072.
    max_payload_bytes: usize = 128 * 1024;

    // --- Abuse limits: per principal per second and per process, bursts of
    // twice the rate (see `omnibiz_service::limits`); REST and sockets share them.
    /// Messages sent (REST send, quick reply send, `send_message`). `OMNIBIZ_SEND_RATE`, default 20.
    send_rate: u32 = 20;
    /// `typing_start` and `typing_stop`. `OMNIBIZ_TYPING_RATE`, default 5.
    typing_rate: u32 = 5;
    /// Socket connections. `OMNIBIZ_CONNECT_RATE`, default 10.
    connect_rate: u32 = 10;
    /// Changes: edits, deletes, conversation and quick-reply changes,
    /// webhooks, revocations, token refreshes. `OMNIBIZ_WRITE_RATE`, default 20.
    write_rate: u32 = 20;
    /// Read receipts and delivery acks (REST and socket). `OMNIBIZ_RECEIPT_RATE`, default 100.
    receipt_rate: u32 = 100;
    /// REST reads (lists, resources, file links and downloads). `OMNIBIZ_READ_RATE`, default 50.
    read_rate: u32 = 50;
    /// Searches. `OMNIBIZ_SEARCH_RATE`, default 5.
    search_rate: u32 = 5;
    /// Uploads. `OMNIBIZ_UPLOAD_RATE`, default 5.
    upload_rate: u32 = 5;
    /// `join_conversation` and `leave_conversation`. `OMNIBIZ_JOIN_RATE`, default 20.
    join_rate: u32 = 20;
    /// Sockets one principal may hold open at once, across every gateway.
    /// `OMNIBIZ_MAX_SOCKETS_PER_PRINCIPAL`, default 20.
    max_sockets_per_principal: usize = 20;
    /// Stored sends in flight at once per process (REST and socket): past
    /// them a send waits `send_queue_ms` for a turn (at most
    /// `send_queue_depth` wait at once), then is refused 503
    /// `OVERLOADED` before anything is stored. `OMNIBIZ_SEND_CONCURRENCY`,
    /// default 16 (BENCHMARKS.md, "Overload": the depth that kept p99 near
    /// 100 ms on the benchmark box; a database on machines of its own takes more).
    send_concurrency: usize = 16;
    /// How long a send may wait for a turn. `OMNIBIZ_SEND_QUEUE_MS`, default 30.
    send_queue_ms: u64 = 30;
    /// How many sends may wait for a turn at once per process; past them a
    /// send is refused at once. `OMNIBIZ_SEND_QUEUE_DEPTH`, default 32
    /// (twice the slots: BENCHMARKS.md, "Overload").
    send_queue_depth: usize = 32;
    /// Uploads one principal may have in flight at once in one process.
    /// `OMNIBIZ_UPLOAD_CONCURRENCY`, default 2.
    upload_concurrency: usize = 2;
    /// New socket connections per client IP per second (bursts of twice
    /// that). `OMNIBIZ_CONNECT_RATE_PER_IP`, default 50.
    connect_rate_per_ip: u32 = 50;
    /// Proxies in front that append the client address to `X-Forwarded-For`
    /// (behind an ingress: 1); 0 uses the TCP peer address. `OMNIBIZ_TRUSTED_PROXY_HOPS`, default 0.
    trusted_proxy_hops: usize = 0;

    // --- Messages.
    /// Seconds after sending during which a sender may edit or delete a
    /// message; 0 for no limit. `OMNIBIZ_EDIT_WINDOW_SECS`, default 900.
    edit_window_secs: u64 = 900;

    // --- Webhooks.
    /// Run the webhook worker (fan-out and deliveries) in `serve` and `api`.
    /// `OMNIBIZ_WEBHOOK_WORKER`, default true.
    webhook_worker: bool = true;
    /// Let webhooks reach private, loopback and link-local addresses
    /// (on-premises receivers, tests). `OMNIBIZ_WEBHOOK_ALLOW_PRIVATE`, default false.
    webhook_allow_private: bool = false;
    /// Whole-request timeout of a delivery. `OMNIBIZ_WEBHOOK_TIMEOUT_MS`, default 10000.
    webhook_timeout_ms: u64 = 10_000;
    /// First retry delay; the schedule (about a day) scales from it.
    /// `OMNIBIZ_WEBHOOK_RETRY_BASE_MS`, default 10000.
    webhook_retry_base_ms: u64 = 10_000;
    /// `message.unread` fires this long after a message was stored if its
    /// recipient is offline and has not read it. `OMNIBIZ_WEBHOOK_UNREAD_AFTER_MS`, default 300000.
    webhook_unread_after_ms: u64 = 300_000;
    /// Failed attempts in a row that disable an endpoint. `OMNIBIZ_WEBHOOK_DISABLE_AFTER`, default 100.
    webhook_disable_after: i64 = 100;
    /// Deliveries per second per business owner. `OMNIBIZ_WEBHOOK_RATE`, default 20.
    webhook_rate: u32 = 20;
    /// Make link previews of the first link of each message (fetched through
    /// the webhooks' address guard: `OMNIBIZ_WEBHOOK_ALLOW_PRIVATE` applies).
    /// `OMNIBIZ_LINK_PREVIEWS`, default true.
    link_previews: bool = true;
    /// Deliveries one process sends at once. `OMNIBIZ_WEBHOOK_CONCURRENCY`, default 16.
    webhook_concurrency: usize = 16;
    /// Deliveries of one business owner one process sends at once: the most
    /// a slow or failing receiver can hold up. `OMNIBIZ_WEBHOOK_OWNER_CONCURRENCY`, default 4.
    webhook_owner_concurrency: usize = 4;
    /// Keys that seal webhook signing secrets at rest: `id:base64-of-32-bytes`,
    /// comma-separated; the first seals, all open (rotation: put a new one
    /// first, restart, then drop the old). `OMNIBIZ_WEBHOOK_SECRET_KEYS`;
    /// unset: one derived from `JWT_SECRET`.
    webhook_secret_keys: Option<SecretString> = None;
    /// Worker pause after a pass that was not full (idle or not). `OMNIBIZ_WEBHOOK_POLL_MS`, default 250.
    webhook_poll_ms: u64 = 250;

    // --- Notifications (sent by the webhook worker; see omnibiz_service::notify).
    /// The VAPID private key (the 32-byte P-256 scalar, base64url, as
    /// `web-push generate-vapid-keys` prints it). `OMNIBIZ_VAPID_PRIVATE_KEY`;
    /// unset: `serve` generates one into `<data_dir>/vapid.key`, pods have no Web Push.
    vapid_private_key: Option<SecretString> = None;
    /// Who push services may write to about our traffic (`mailto:` or
    /// `https:`). `OMNIBIZ_VAPID_SUBJECT`; required with a key in pods,
    /// `serve` uses `mailto:admin@localhost`.
    vapid_subject: Option<String> = None;
    /// How long after a message its push is due (a reader who reads it
    /// sooner gets none). `OMNIBIZ_PUSH_DELAY_MS`, default 2000.
    push_delay_ms: u64 = 2_000;
    /// How long a push service keeps a notification for an offline device.
    /// `OMNIBIZ_PUSH_TTL_SECS`, default 86400.
    push_ttl_secs: u64 = 86_400;
    /// Browsers one person may subscribe. `OMNIBIZ_PUSH_MAX_SUBSCRIPTIONS`, default 10.
    push_max_subscriptions: usize = 10;
    /// Where notification emails go: `smtp://user:pass@host:587?tls=required`,
    /// `smtps://…:465`, or `smtp://host:25` (no TLS: a local relay only).
    /// `OMNIBIZ_SMTP_URL`; unset: pods send no email, `serve` appends them
    /// to `OMNIBIZ_MAIL_LOG`.
    smtp_url: Option<SecretString> = None;
    /// `From:` of notification emails (`OmniBiz <notify@example.com>`; the
    /// business's name replaces the display name for customers).
    /// `OMNIBIZ_MAIL_FROM`; required with `OMNIBIZ_SMTP_URL`.
    mail_from: Option<String> = None;
    /// `serve` without SMTP: the file emails are appended to. `OMNIBIZ_MAIL_LOG`,
    /// default `<data_dir>/mail.log`.
    mail_log: Option<PathBuf> = None;
    /// How long a message stays unread before it is emailed (a business can
    /// choose its own, 60–86400). `OMNIBIZ_EMAIL_DELAY_SECS`, default 300.
    email_delay_secs: u64 = 300;
    /// Replies go to `r-<signed token>@<this domain>`, whose inbound mail the
    /// provider posts to `/api/notifications/inbound-email`.
    /// `OMNIBIZ_MAIL_REPLY_DOMAIN`; unset: no reply by email.
    mail_reply_domain: Option<String> = None;
    /// How long a reply address stays valid. `OMNIBIZ_MAIL_REPLY_TTL_DAYS`, default 30.
    mail_reply_ttl_days: u64 = 30;
    /// Signs reply addresses and unsubscribe links (32+ bytes, the same on
    /// every pod). `OMNIBIZ_MAIL_SIGNING_KEY`; unset: derived from `JWT_SECRET`.
    mail_signing_key: Option<SecretString> = None;
    /// When set, `/api/notifications/inbound-email` requires it as a bearer
    /// token or a basic-auth password (put it in the provider's webhook URL).
    /// `OMNIBIZ_INBOUND_EMAIL_SECRET`.
    inbound_email_secret: Option<SecretString> = None;

    // --- Files (S3-compatible bucket, or a local directory).
    /// Where uploads are kept on local disk. `OMNIBIZ_FILES_DIR`; `serve`
    /// defaults to `<data_dir>/files`. Ignored when an S3 bucket is set.
    files_dir: Option<PathBuf> = None;
    /// S3-compatible bucket for uploads (pods). `OMNIBIZ_S3_BUCKET`.
    s3_bucket: Option<String> = None;
    /// The S3 endpoint for S3-compatible servers (MinIO, Ceph, …); AWS when
    /// unset. `OMNIBIZ_S3_ENDPOINT`.
    s3_endpoint: Option<String> = None;
    /// `OMNIBIZ_S3_REGION`, default `us-east-1`.
    s3_region: String = "us-east-1".into();
    /// `OMNIBIZ_S3_ACCESS_KEY_ID`; else `AWS_ACCESS_KEY_ID` and the usual AWS sources.
    s3_access_key_id: Option<String> = None;
    /// `OMNIBIZ_S3_SECRET_ACCESS_KEY`; else `AWS_SECRET_ACCESS_KEY`.
    s3_secret_access_key: Option<SecretString> = None;
    /// Largest upload in bytes. `OMNIBIZ_UPLOAD_MAX_BYTES`, default 10485760 (10 MiB).
    upload_max_bytes: u64 = 10 * 1024 * 1024;
    /// Comma-separated media types accepted, as sniffed from the content.
    /// `OMNIBIZ_UPLOAD_TYPES`, default images (PNG, JPEG, GIF, WebP), PDF,
    /// and audio for voice messages (WebM, Ogg, MP4, MP3).
    upload_types: String = crate::files::DEFAULT_TYPES.into();
    /// Longest voice message (audio upload) in seconds; a longer recording
    /// is refused. `OMNIBIZ_AUDIO_MAX_SECS`, default 900.
    audio_max_secs: u64 = 900;
    /// Uploads not attached to a message are deleted after this many seconds.
    /// `OMNIBIZ_UPLOAD_ORPHAN_SECS`, default 86400.
    upload_orphan_secs: u64 = 24 * 3600;
    /// Lifetime of a signed download link. `OMNIBIZ_FILES_LINK_TTL_SECS`, default 300.
    files_link_ttl_secs: u64 = 300;
    /// Key that signs download links; every pod needs the same one.
    /// `OMNIBIZ_FILES_SIGNING_KEY`; derived from the JWT secret when unset.
    files_signing_key: Option<SecretString> = None;

    // --- Benchmarks only.
    /// Benchmarks only: socket sends are relayed without being stored, to
    /// compare like with like against the database-less Node peer.
    /// `OMNIBIZ_BENCH_RELAY_ONLY`, default false. Never enable in production.
    bench_relay_only: bool = false;
}

fn non_empty(s: Option<SecretString>) -> Option<SecretString> {
    s.filter(|v| !v.expose_secret().trim().is_empty())
}

impl Settings {
    /// Defaults ← `OMNIBIZ_CONFIG` file ← environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut fig = Figment::new();
        if let Ok(path) = std::env::var("OMNIBIZ_CONFIG") {
            if !std::path::Path::new(&path).exists() {
                bail!("OMNIBIZ_CONFIG points to {path}, which does not exist");
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only known keys: scripts export other OMNIBIZ_* variables (ports, tool paths).
        fig = fig.merge(Env::raw().only(PLAIN_ENV)).merge(Env::prefixed("OMNIBIZ_").only(KEYS));
        let s: Self = fig.extract().context("reading configuration")?;
        s.validated()
    }

    /// Normalises and checks values; called by [`Settings::load`].
    pub fn validated(mut self) -> anyhow::Result<Self> {
        self.mongodb_uri = non_empty(self.mongodb_uri);
        self.redis_url = non_empty(self.redis_url);
        self.jwt_secret = non_empty(self.jwt_secret);
        self.jwt_issuer = self.jwt_issuer.filter(|v| !v.trim().is_empty());
        self.jwt_audience = self.jwt_audience.filter(|v| !v.trim().is_empty());
        self.jwt_algorithms()?;
        self.otlp_endpoint = self.otlp_endpoint.filter(|v| !v.trim().is_empty());
        if let Some(e) = &self.otlp_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            bail!("OMNIBIZ_OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP), not {e}");
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            bail!("OMNIBIZ_TRACE_SAMPLE_RATIO must be between 0 and 1");
        }
        if let Some(uri) = &self.mongodb_uri {
            let u = uri.expose_secret();
            if !(u.starts_with("mongodb://") || u.starts_with("mongodb+srv://")) {
                bail!("MONGODB_URI must start with mongodb:// or mongodb+srv://");
            }
        }
        if let Some(url) = &self.redis_url {
            let u = url.expose_secret();
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("redis-cluster://")) {
                bail!("REDIS_URL must start with redis://, rediss:// or redis-cluster://");
            }
        }
        if self.body_limit_bytes < 1024 {
            bail!("body_limit_bytes must be at least 1024");
        }
        if self.drain_secs >= self.shutdown_grace_secs {
            bail!("drain_secs ({}) must be below shutdown_grace_secs ({})", self.drain_secs, self.shutdown_grace_secs);
        }
        if self.presence_ttl_secs < 3 {
            bail!("presence_ttl_secs must be at least 3");
        }
        if self.socket_buffer == 0 || self.max_connections == 0 {
            bail!("socket_buffer and max_connections must be at least 1");
        }
        if self.ping_interval_secs == 0
            || self.ping_timeout_secs == 0
            || self.connect_timeout_secs == 0
            || self.header_timeout_secs == 0
            || self.account_check_secs == 0
        {
            bail!(
                "ping_interval_secs, ping_timeout_secs, connect_timeout_secs, header_timeout_secs and account_check_secs must be at least 1"
            );
        }
        if let Some(url) = &self.console_socket_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("console_socket_url must be an http:// or https:// URL, got {url:?}");
        }
        if self.webhook_timeout_ms < 100 || self.webhook_retry_base_ms == 0 || self.webhook_poll_ms == 0 {
            bail!("webhook_timeout_ms must be at least 100, webhook_retry_base_ms and webhook_poll_ms at least 1");
        }
        if self.push_ttl_secs == 0 || self.push_max_subscriptions == 0 {
            bail!("push_ttl_secs and push_max_subscriptions must be at least 1");
        }
        if self.email_delay_secs > 86_400 {
            bail!("email_delay_secs must be at most 86400 (a day)");
        }
        if self.mail_reply_ttl_days == 0 {
            bail!("mail_reply_ttl_days must be at least 1");
        }
        if self.webhook_rate == 0
            || self.webhook_disable_after < 1
            || self.webhook_concurrency == 0
            || self.webhook_owner_concurrency == 0
        {
            bail!(
                "webhook_rate, webhook_disable_after, webhook_concurrency and webhook_owner_concurrency must be at least 1"
            );
        }
        if self.max_rooms_per_socket == 0
            || self.connect_rate == 0
            || [self.send_rate, self.typing_rate, self.write_rate, self.receipt_rate, self.read_rate].contains(&0)
            || [self.search_rate, self.upload_rate, self.join_rate].contains(&0)
            || self.max_sockets_per_principal == 0
            || self.upload_concurrency == 0
            || self.send_concurrency == 0
            || self.connect_rate_per_ip == 0
            || self.max_payload_bytes < 1024
        {
            bail!(
                "max_rooms_per_socket, max_sockets_per_principal, upload_concurrency, send_concurrency and every *_rate must be at least 1, max_payload_bytes at least 1024"
            );
        }
        if self.jwt_leeway_secs > 600 {
            bail!("jwt_leeway_secs above 600 accepts tokens long expired; use at most 600");
        }
        self.s3_secret_access_key = non_empty(self.s3_secret_access_key);
        self.files_signing_key = non_empty(self.files_signing_key);
        self.webhook_secret_keys = non_empty(self.webhook_secret_keys);
        self.vapid_private_key = non_empty(self.vapid_private_key);
        self.smtp_url = non_empty(self.smtp_url);
        self.mail_signing_key = non_empty(self.mail_signing_key);
        self.inbound_email_secret = non_empty(self.inbound_email_secret);
        self.s3_bucket = self.s3_bucket.filter(|b| !b.trim().is_empty());
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!("public_url must be an http:// or https:// URL, got {url:?}");
        }
        if let Some(e) = &self.s3_endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            bail!("s3_endpoint must be an http:// or https:// URL, got {e:?}");
        }
        if self.upload_max_bytes == 0
            || self.files_link_ttl_secs == 0
            || self.audio_max_secs == 0
            || self.upload_orphan_secs < 60
        {
            bail!(
                "upload_max_bytes, files_link_ttl_secs and audio_max_secs must be at least 1, upload_orphan_secs at least 60"
            );
        }
        if self.upload_type_list().is_empty() {
            bail!("upload_types names no media type");
        }
        if self.request_timeout_secs == 0 {
            bail!("request_timeout_secs must be at least 1");
        }
        Ok(self)
    }

    /// `upload_types` as a list.
    pub fn upload_type_list(&self) -> Vec<String> {
        self.upload_types.split(',').map(|t| t.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()).collect()
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The per-principal rate limits.
    pub fn rates(&self) -> crate::limits::Rates {
        crate::limits::Rates {
            send: self.send_rate,
            write: self.write_rate,
            receipt: self.receipt_rate,
            read: self.read_rate,
            search: self.search_rate,
            upload: self.upload_rate,
            typing: self.typing_rate,
            join: self.join_rate,
            connect: self.connect_rate,
        }
    }

    /// CORS origins; `None` means any origin.
    pub fn cors_origin_list(&self) -> Option<Vec<String>> {
        let raw = self.cors_origins.trim();
        if raw == "*" || raw.is_empty() {
            return None;
        }
        Some(raw.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
    }

    /// Which token algorithms to accept: (HS256, RS256).
    pub fn jwt_algorithms(&self) -> anyhow::Result<(bool, bool)> {
        let Some(list) = self.jwt_algorithms.as_deref().filter(|l| !l.trim().is_empty()) else {
            let rs = self.jwt_public_key_file.is_some();
            // With neither key, HS256 (serve generates its secret; pods are told to set one).
            return Ok((self.jwt_secret.is_some() || !rs, rs));
        };
        let (mut hs, mut rs) = (false, false);
        for alg in list.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match alg.to_ascii_uppercase().as_str() {
                "HS256" => hs = true,
                "RS256" => rs = true,
                other => bail!("OMNIBIZ_JWT_ALGORITHMS: {other:?} is not supported; use HS256, RS256 or both"),
            }
        }
        if !(hs || rs) {
            bail!("OMNIBIZ_JWT_ALGORITHMS names no algorithm; use HS256, RS256 or both");
        }
        if rs && self.jwt_public_key_file.is_none() {
            bail!("OMNIBIZ_JWT_ALGORITHMS enables RS256, which needs JWT_PUBLIC_KEY_FILE");
        }
        Ok((hs, rs))
    }

    /// The RS256 public key, read from `jwt_public_key_file` when set.
    pub fn jwt_public_key(&self) -> anyhow::Result<Option<Vec<u8>>> {
        self.jwt_public_key_file
            .as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading JWT_PUBLIC_KEY_FILE {}", p.display())))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Settings { jwt_secret: Some(SecretString::from("hunter2-hunter2")), ..Settings::default() };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn empty_values_count_as_unset_and_bad_urls_are_refused() {
        let s = Settings { mongodb_uri: Some(SecretString::from(" ")), ..Settings::default() };
        assert!(s.validated().expect("valid").mongodb_uri.is_none());
        let s = Settings { mongodb_uri: Some(SecretString::from("http://x")), ..Settings::default() };
        assert!(s.validated().is_err());
    }

    #[test]
    fn every_field_can_come_from_the_environment() {
        let debug = format!("{:?}", Settings::default());
        for key in KEYS {
            assert!(debug.contains(&format!("{key}:")), "{key} is not a field of Settings");
        }
        let n_fields = debug.matches(": ").count();
        assert_eq!(n_fields, KEYS.len(), "a field is missing from KEYS: {debug}");
    }

    #[test]
    fn cors_list() {
        let s = Settings { cors_origins: "https://a.example, https://b.example".into(), ..Settings::default() };
        assert_eq!(s.cors_origin_list().expect("list").len(), 2);
        assert!(Settings::default().cors_origin_list().is_none());
    }
}
