//! Building and running the `serve` and `api` targets.
//!
//! Backends are chosen here and only here:
//! - store: MongoDB when `MONGODB_URI` is set (required for `api`), else the
//!   embedded SQLite file `<data_dir>/omnibiz.db` (`serve` only);
//! - bus and presence: Redis when `REDIS_URL` is set (required for `api` and
//!   `gateway`), else in-process (`serve` only).
//!
//! A MongoDB that cannot be used at start does not stop the process: it
//! logs, fails `/readyz` with the reason (unreachable, an index the server
//! refused, or a database the Node service wrote that needs `omnibiz
//! migrate`), and retries until it can. It never falls back to the embedded
//! store. Once ready, `serve` and `api` on MongoDB run the legacy adopter
//! (`store::mongo::legacy`) unless `OMNIBIZ_LEGACY_ADOPT_INTERVAL_MS=0`.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use omnibiz_api::console::ConsoleOptions;
use omnibiz_api::{ApiState, HttpOptions, Readiness};
use omnibiz_gateway::{Cluster, Gateway, GatewayConfig};
use omnibiz_service::auth::{KeyConfig, Verifier};
use omnibiz_service::bus::Bus;
use omnibiz_service::bus::local::LocalBus;
use omnibiz_service::bus::redis::RedisBus;
use omnibiz_service::config::Settings;
use omnibiz_service::files::{Files, FilesConfig, S3Location};
use omnibiz_service::jobs::{adopter, sweeper};
use omnibiz_service::limits::Limits;
use omnibiz_service::messaging::Messaging;
use omnibiz_service::nodes::{Directory, RedisDirectory};
use omnibiz_service::presence::{LocalPresence, Presence, RedisPresence};
use omnibiz_service::telemetry;
use omnibiz_service::webhooks::guard::Guard;
use omnibiz_service::webhooks::sealing::SecretBox;
use omnibiz_service::webhooks::worker::{Worker as HookWorker, WorkerConfig};
use omnibiz_store::mongo::MongoStore;
use omnibiz_store::mongo::legacy::SchemaState;
use omnibiz_store::sqlite::SqliteStore;
use omnibiz_store::{Store, StoreError};
use secrecy::ExposeSecret as _;
use tokio::net::TcpListener;

use crate::secret::{self, SecretSource};

/// Which target to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// API and gateway in one process on one port; embedded store unless `MONGODB_URI`.
    Serve,
    /// Stateless REST API pod; MongoDB and Redis required.
    Api,
    /// Socket.IO gateway pod; MongoDB and Redis required.
    Gateway,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Self::Serve => "serve",
            Self::Api => "api",
            Self::Gateway => "gateway",
        }
    }
}

/// A store and how it was chosen.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    /// Human-readable description for the startup message.
    pub describe: String,
    /// For MongoDB: indexes still to be created (done in the background).
    pub mongo: Option<MongoStore>,
}

/// Opens the store the settings ask for. `api` refuses to run without MongoDB.
pub async fn open_store(settings: &Settings, target: Target) -> anyhow::Result<OpenedStore> {
    match (&settings.mongodb_uri, target) {
        (Some(uri), _) => {
            let m = MongoStore::connect(uri.expose_secret(), settings.mongodb_database.as_deref()).await?;
            Ok(OpenedStore { store: Arc::new(m.clone()), describe: "mongodb".into(), mongo: Some(m) })
        }
        (None, Target::Api | Target::Gateway) => {
            anyhow::bail!("MONGODB_URI is required for `omnibiz {}`", target.name())
        }
        (None, Target::Serve) => {
            let path = settings.data_dir.join("omnibiz.db");
            let s = SqliteStore::open(&path)?;
            Ok(OpenedStore { store: Arc::new(s), describe: format!("sqlite {}", path.display()), mongo: None })
        }
    }
}

/// The bus, presence and (with Redis) the gateway directory.
struct Backplane {
    bus: Arc<dyn Bus>,
    presence: Arc<dyn Presence>,
    directory: Option<Arc<dyn Directory>>,
}

/// Chooses the bus and presence: Redis when configured, else in-process (`serve` only).
fn open_bus(settings: &Settings, target: Target, origin: &str) -> anyhow::Result<Backplane> {
    match &settings.redis_url {
        Some(url) => {
            let bus = RedisBus::connect(url.expose_secret(), settings.redis_sharded)?;
            let ttl = Duration::from_secs(settings.presence_ttl_secs);
            let presence = RedisPresence::new(bus.client().clone(), origin, ttl);
            let directory = RedisDirectory::new(bus.client().clone());
            Ok(Backplane { bus: Arc::new(bus), presence: Arc::new(presence), directory: Some(Arc::new(directory)) })
        }
        None if target == Target::Serve => Ok(Backplane {
            bus: Arc::new(LocalBus::default()),
            presence: Arc::new(LocalPresence::default()),
            directory: None,
        }),
        None => anyhow::bail!("REDIS_URL is required for `omnibiz {}`", target.name()),
    }
}

/// Where other gateways reach this one: `OMNIBIZ_ADVERTISE_ADDR`, else the
/// listener's address (loopback when it listens on every interface).
fn advertise_addr(settings: &Settings, local: SocketAddr) -> anyhow::Result<SocketAddr> {
    if let Some(a) = &settings.advertise_addr {
        return a.parse().with_context(|| format!("OMNIBIZ_ADVERTISE_ADDR {a} is not host:port"));
    }
    if local.ip().is_unspecified() {
        tracing::warn!(
            "OMNIBIZ_ADVERTISE_ADDR is unset: other gateways will forward polling requests to 127.0.0.1:{}, \
             which only works when they run on this host (Kubernetes: set it to $(POD_IP):<port>)",
            local.port()
        );
        return Ok(SocketAddr::from(([127, 0, 0, 1], local.port())));
    }
    Ok(local)
}

/// Creates MongoDB's indexes and checks that the database is migrated,
/// retrying until both hold; then marks the store ready and, when
/// `adopt_every` is set, starts the legacy adopter. Until then `/readyz` and
/// the log name the real cause: unreachable, an index the server refused,
/// or a database the Node service wrote that needs `omnibiz migrate`.
fn initialise_in_background(
    mongo: MongoStore,
    readiness: Arc<Readiness>,
    target: Target,
    adopter: Option<(Messaging, Duration, String)>,
) {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(250);
        let mut last_reason = String::new();
        loop {
            let outcome = match mongo.ensure_indexes().await {
                Ok(()) => mongo.schema_state(&format!("omnibiz {}", target.name())).await,
                Err(e) => Err(e),
            };
            // `/readyz` is public: it says what is wrong in our words (the
            // outermost context); the driver's text, which may name hosts
            // and users, goes to the log only.
            let (reason, detail) = match outcome {
                Ok(SchemaState::Ready) => {
                    readiness.set_store_initialised();
                    tracing::info!("mongodb ready: indexes in place, schema current");
                    if let Some((messaging, every, holder)) = adopter {
                        adopter::run(mongo, messaging, every, holder).await;
                    }
                    return;
                }
                Ok(SchemaState::NeedsMigration(reason)) => (reason.clone(), reason),
                Err(StoreError::Unavailable(e)) => ("mongodb not reachable".to_owned(), format!("{e:#}")),
                Err(StoreError::Other(e)) => (format!("{e}"), format!("{e:#}")),
                Err(StoreError::TimedOut(e)) => (e.clone(), e),
            };
            if detail != last_reason {
                tracing::error!(reason = %detail, "mongodb not usable yet; /readyz fails until it is (retrying)");
                last_reason.clone_from(&detail);
            }
            readiness.set_store_blocked(reason);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

/// Reseals the webhook secrets not under the current key (after a rotation,
/// or stored before sealing); retries while the store cannot be reached.
async fn reseal_hook_secrets(store: Arc<dyn omnibiz_store::Store>, secrets: Arc<SecretBox>) {
    for _ in 0..60 {
        match HookWorker::reseal_all(store.as_ref(), &secrets).await {
            Ok(0) => return,
            Ok(n) => {
                tracing::info!(resealed = n, key = secrets.current(), "webhook secrets resealed under the current key");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "resealing webhook secrets: store not ready; retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    }
}

/// File storage for uploads: an S3 bucket when one is configured, else a
/// directory (`files_dir`; `serve` defaults to `<data_dir>/files`), else none.
/// Links are signed with `files_signing_key`, or a key derived from the JWT secret.
fn open_files(settings: &Settings, target: Target, jwt_secret: Option<&[u8]>) -> anyhow::Result<Option<Files>> {
    let key = || -> anyhow::Result<Vec<u8>> {
        match (&settings.files_signing_key, jwt_secret) {
            (Some(k), _) => {
                let k = k.expose_secret().as_bytes();
                secret::check_strength(k, "OMNIBIZ_FILES_SIGNING_KEY")?;
                Ok(k.to_vec())
            }
            (None, Some(jwt)) => Ok(Files::derive_key(jwt)),
            (None, None) => anyhow::bail!(
                "uploads need OMNIBIZ_FILES_SIGNING_KEY (the same on every pod) when there is no JWT_SECRET to derive it from"
            ),
        }
    };
    let config = FilesConfig {
        max_bytes: settings.upload_max_bytes,
        allowed_types: settings.upload_type_list(),
        public_url: settings.public_url.clone(),
        link_ttl: Duration::from_secs(settings.files_link_ttl_secs),
        orphan_after: Duration::from_secs(settings.upload_orphan_secs),
        audio: omnibiz_service::files::audio::Limits {
            max_duration: Duration::from_secs(settings.audio_max_secs),
            ..Default::default()
        },
    };
    if let Some(bucket) = &settings.s3_bucket {
        let at = S3Location {
            bucket: bucket.clone(),
            region: settings.s3_region.clone(),
            endpoint: settings.s3_endpoint.clone(),
            access_key_id: settings.s3_access_key_id.clone(),
            secret_access_key: settings.s3_secret_access_key.as_ref().map(|s| s.expose_secret().to_owned()),
        };
        return Files::s3(&at, &key()?, config).map(Some);
    }
    let dir = match (&settings.files_dir, target) {
        (Some(d), _) => d.clone(),
        (None, Target::Serve) => settings.data_dir.join("files"),
        (None, _) => return Ok(None),
    };
    Files::local(&dir, &key()?, config).map(Some)
}

/// A unique name for this application in bus envelopes and presence:
/// `<target>-<pod>-<pid>-<random>` (unique even with several in one process).
fn origin(target: Target) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{}-{host}-{}-{:06x}", target.name(), std::process::id(), rand::random::<u32>() & 0xff_ffff)
}

/// A built application, listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    router: Router,
    readiness: Arc<Readiness>,
    grace: Duration,
    drain: Duration,
    banner: String,
    gateway: Option<Gateway>,
    /// The webhook worker, stopped with the server.
    hooks: Option<tokio::task::JoinHandle<()>>,
    /// How long a client may take to send a request's headers.
    header_timeout: Duration,
}

/// Connections waiting to be accepted, per listener (the kernel caps it at
/// `net.core.somaxconn`). A gateway takes bursts: when a pod goes away its
/// clients reconnect within seconds; with tokio's default of 1024 a burst of
/// 200 000 connects over 12 processes on one machine had handshakes reset.
const ACCEPT_BACKLOG: u32 = 4096;

fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

impl Application {
    pub async fn build(settings: &Settings, target: Target) -> anyhow::Result<Self> {
        let (hs256, rs256) = settings.jwt_algorithms()?;
        let serve = target == Target::Serve;
        // The HS256 secret, when HS256 is on or (serve, else JWT_SECRET) download links derive their key from it.
        let derive_links = settings.files_signing_key.is_none() && (serve || settings.jwt_secret.is_some());
        let jwt = if hs256 || derive_links { Some(secret::jwt_secret(settings, serve)?) } else { None };
        let public_key = if rs256 { settings.jwt_public_key()? } else { None };
        let prometheus = telemetry::prometheus();
        telemetry::register_metrics();
        let verifier = Verifier::from_config(&KeyConfig {
            hs256_secret: jwt.as_ref().filter(|_| hs256).map(|(s, _)| s.as_slice()),
            rs256_public_pem: public_key.as_deref(),
            leeway: settings.jwt_leeway_secs,
            issuer: settings.jwt_issuer.as_deref(),
            audience: settings.jwt_audience.as_deref(),
        })?;
        let source = match (&jwt, hs256) {
            (Some((_, source)), true) => source.clone(),
            _ => SecretSource::None,
        };
        let secret = jwt.map(|(s, _)| s);
        let opened = open_store(settings, target).await?;
        let readiness = Arc::new(Readiness::default());
        let origin = origin(target);
        let Backplane { bus, presence, directory } = open_bus(settings, target, &origin)?;
        let addr = settings.listen_addr();
        let listener = listen(addr).with_context(|| format!("listening on {addr}"))?;
        let local = listener.local_addr()?;
        if settings.bench_relay_only {
            tracing::warn!("OMNIBIZ_BENCH_RELAY_ONLY is set: socket messages are NOT stored (benchmarks only)");
        }
        let hook_guard = Guard { allow_private: settings.webhook_allow_private };
        // Webhook secrets are sealed at rest by the processes that store them (not gateways).
        let hook_secrets = match (target, &settings.webhook_secret_keys, secret.as_deref()) {
            (Target::Gateway, ..) => None,
            (_, Some(spec), _) => Some(Arc::new(SecretBox::from_spec(spec.expose_secret())?)),
            (_, None, Some(jwt)) => Some(Arc::new(SecretBox::derived(jwt))),
            (_, None, None) => anyhow::bail!(
                "webhook secrets are sealed with OMNIBIZ_WEBHOOK_SECRET_KEYS, or a key derived from JWT_SECRET: set one"
            ),
        };
        let files = open_files(settings, target, secret.as_deref())?.map(Arc::new);
        let edit_window = (settings.edit_window_secs > 0).then(|| Duration::from_secs(settings.edit_window_secs));
        let mut messaging = Messaging::new(Arc::clone(&opened.store), Arc::clone(&bus), Arc::clone(&presence), &origin)
            .with_hook_guard(hook_guard)
            .with_edit_window(edit_window)
            .with_account_ttl(Duration::from_secs(settings.account_cache_secs))
            .with_limits(Limits::new(settings.rates()).with_upload_concurrency(settings.upload_concurrency))
            .with_link_previews(settings.link_previews)
            .with_send_gate(omnibiz_service::overload::SendGate::new(
                settings.send_concurrency,
                settings.send_queue_depth,
                Duration::from_millis(settings.send_queue_ms),
            ));
        // Rate-limit buckets of principals that went quiet are forgotten every minute.
        let pruned = messaging.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                pruned.prune_limits();
            }
        });
        if target == Target::Gateway {
            // Accounts load once per connection; rooms know their participants.
            messaging = messaging.without_caches();
        }
        if let Some(b) = &hook_secrets {
            messaging = messaging.with_hook_secrets(Arc::clone(b));
            tokio::spawn(reseal_hook_secrets(opened.store.clone(), Arc::clone(b)));
        }
        if let Some(f) = &files {
            messaging = messaging.with_files(Arc::clone(f));
            // The processes that take uploads sweep them; gateways don't.
            if target != Target::Gateway {
                tokio::spawn(sweeper::run(opened.store.clone(), Arc::clone(f), Duration::from_secs(60)));
            }
        }
        let notifier = if target == Target::Gateway {
            None
        } else {
            Some(Arc::new(crate::notify::notifier(
                settings,
                target == Target::Serve,
                hook_guard,
                opened.store.clone(),
                secret.as_deref(),
                local,
            )?))
        };
        if let Some(n) = &notifier {
            messaging = messaging.with_notifier(Arc::clone(n));
        }
        // The processes that store messages deliver webhooks; gateways don't.
        let hooks = (target != Target::Gateway && settings.webhook_worker).then(|| {
            let cfg = WorkerConfig {
                holder: origin.clone(),
                poll: Duration::from_millis(settings.webhook_poll_ms),
                timeout: Duration::from_millis(settings.webhook_timeout_ms),
                retry_base: Duration::from_millis(settings.webhook_retry_base_ms),
                unread_after: Duration::from_millis(settings.webhook_unread_after_ms),
                disable_after: settings.webhook_disable_after,
                per_owner_rate: NonZeroU32::new(settings.webhook_rate).unwrap_or(NonZeroU32::MIN),
                concurrency: settings.webhook_concurrency,
                per_owner_concurrency: settings.webhook_owner_concurrency,
                secrets: hook_secrets.clone(),
                guard: hook_guard,
            };
            let worker = HookWorker::new(opened.store.clone(), opened.store.clone(), Arc::clone(&presence), cfg)
                .with_parties(messaging.parties_cache());
            match &notifier {
                Some(n) => worker.with_notifier(Arc::clone(n)),
                None => worker,
            }
            .spawn()
        });
        match opened.mongo.clone() {
            Some(m) => {
                // The processes that store messages adopt the Node service's; gateways don't.
                let adopter = (target != Target::Gateway && settings.legacy_adopt_interval_ms > 0).then(|| {
                    (messaging.clone(), Duration::from_millis(settings.legacy_adopt_interval_ms), origin.clone())
                });
                initialise_in_background(m, Arc::clone(&readiness), target, adopter);
            }
            None => readiness.set_store_initialised(),
        }
        let verifier = Arc::new(verifier);
        let state = ApiState {
            messaging: messaging.clone(),
            verifier: Arc::clone(&verifier),
            metrics: prometheus,
            readiness: Arc::clone(&readiness),
        };
        let opts = HttpOptions {
            body_limit_bytes: settings.body_limit_bytes,
            request_timeout: Duration::from_secs(settings.request_timeout_secs),
            cors_origins: settings.cors_origin_list(),
        };
        let gateway = match target {
            Target::Api => None,
            Target::Serve | Target::Gateway => {
                let config = GatewayConfig {
                    max_connections: settings.max_connections,
                    max_buffer: settings.socket_buffer,
                    heartbeat: Duration::from_secs(settings.presence_ttl_secs) / 3,
                    relay_only: settings.bench_relay_only,
                    ping_interval: Duration::from_secs(settings.ping_interval_secs),
                    ping_timeout: Duration::from_secs(settings.ping_timeout_secs),
                    max_rooms_per_socket: settings.max_rooms_per_socket,
                    max_sockets_per_principal: settings.max_sockets_per_principal,
                    connect_packet_timeout: Duration::from_secs(settings.connect_timeout_secs),
                    query_token: settings.allow_query_token,
                    account_check: Duration::from_secs(settings.account_check_secs),
                    max_payload: settings.max_payload_bytes,
                    ..GatewayConfig::default()
                };
                // Gateway pods forward each other's polling requests: no affinity needed.
                let cluster = match (target, directory) {
                    (Target::Gateway, Some(directory)) => {
                        Some(Cluster { directory, advertise: advertise_addr(settings, local)? })
                    }
                    _ => None,
                };
                Some(Gateway::start(messaging, verifier, presence, config, cluster))
            }
        };
        // The Socket.IO endpoint honours the same CORS_ORIGINS as the REST API,
        // and limits new connections per client address.
        let ip_limit = omnibiz_api::limits::IpLimit {
            per_sec: NonZeroU32::new(settings.connect_rate_per_ip).unwrap_or(NonZeroU32::MIN),
            trusted_proxy_hops: settings.trusted_proxy_hops,
        };
        let sockets = gateway.as_ref().map(|g| {
            let limited = omnibiz_api::limits::for_sockets(g.router.clone(), ip_limit);
            omnibiz_api::cors::for_sockets(limited, &opts.cors_origins)
        });
        // The web console: on by default in `serve`, opt-in for pods.
        let console = settings
            .console
            .unwrap_or(target == Target::Serve)
            .then(|| omnibiz_api::console::router(&ConsoleOptions { socket_url: settings.console_socket_url.clone() }));
        let extra = sockets.unwrap_or_default().merge(console.clone().unwrap_or_default());
        let router = match target {
            Target::Gateway => omnibiz_api::ops_router(state).merge(extra),
            Target::Serve | Target::Api => omnibiz_api::router(state, &opts, extra),
        };
        let node = gateway.as_ref().and_then(|g| g.node.as_deref());
        let files_line = files.as_ref().map(|f| f.describe().to_owned());
        let notify_line = notifier.as_ref().map(|n| n.describe());
        let facts = Backends {
            store: &opened.describe,
            bus: bus.kind(),
            node,
            files: files_line.as_deref(),
            notify: notify_line.as_deref(),
        };
        let banner = banner(target, local, &facts, &source, console.is_some());
        let grace = Duration::from_secs(settings.shutdown_grace_secs);
        let drain = Duration::from_secs(settings.drain_secs);
        let header_timeout = Duration::from_secs(settings.header_timeout_secs);
        Ok(Self { listener, router, readiness, grace, drain, banner, gateway, hooks, header_timeout })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The gateway core, when this target holds connections.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref()
    }

    /// What to print at start: where to connect and how to get a token.
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Serves until `shutdown` completes, then: fails readiness, stops
    /// accepting, drains the gateway's sockets over the drain window,
    /// finishes in-flight requests — and returns at the latest after the
    /// grace period.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let readiness = Arc::clone(&self.readiness);
        let hub = self.gateway.as_ref().map(|g| Arc::clone(&g.hub));
        let drain_window = self.drain;
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested: failing readiness, draining (a second signal exits at once)");
            readiness.set_draining();
            match hub {
                Some(hub) => {
                    tokio::spawn(async move {
                        hub.drain(drain_window).await;
                        let _ = drained_tx.send(());
                    });
                }
                None => drop(drained_tx),
            }
            let _ = stopped_tx.send(());
        };
        // The peer address feeds the per-IP connection limit (`api::limits`).
        let serve = crate::http::serve(self.listener, self.router, self.header_timeout, signal);
        let grace = self.grace;
        let finished = async move {
            serve.await.context("serving HTTP")?;
            // Upgraded websockets outlive the HTTP server: wait for the drain.
            let _ = drained_rx.await;
            Ok::<(), anyhow::Error>(())
        };
        let deadline = async move {
            if stopped_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        // A delivery cut off here is sent again by a worker once its lease expires.
        let hooks = self.hooks;
        let result = tokio::select! {
            r = finished => r,
            () = deadline => {
                tracing::warn!("grace period over with work still in flight; exiting");
                Ok(())
            }
        };
        if let Some(h) = hooks {
            h.abort();
        }
        result
    }
}

/// What the banner says a process runs on.
struct Backends<'a> {
    store: &'a str,
    bus: &'a str,
    node: Option<&'a str>,
    files: Option<&'a str>,
    /// What notifications this process sends (`None`: a gateway, which sends none).
    notify: Option<&'a str>,
}

fn banner(target: Target, addr: SocketAddr, on: &Backends<'_>, secret: &SecretSource, console: bool) -> String {
    let Backends { store, bus, node, files, notify } = *on;
    let notify_line = notify.map(|n| format!("notify     {n}\n  ")).unwrap_or_default();
    let host = if addr.ip().is_unspecified() { "127.0.0.1".to_owned() } else { addr.ip().to_string() };
    let base = format!("http://{host}:{}", addr.port());
    let secret_line = match secret {
        SecretSource::Env => "JWT secret: from JWT_SECRET".to_owned(),
        SecretSource::None => "JWT: RS256 tokens only (JWT_PUBLIC_KEY_FILE)".to_owned(),
        SecretSource::Generated(p) => {
            format!("JWT secret: none given, so generated one and saved it in {}", p.display())
        }
        SecretSource::File(p) => {
            format!("JWT secret: {} (generated earlier; set JWT_SECRET to use your own)", p.display())
        }
    };
    let ws = base.replacen("http", "ws", 1);
    let console_line = if console {
        format!("Console    {base}/   (web inbox and customer chat; sign in with a token or a link from `seed`)\n  ")
    } else {
        String::new()
    };
    format!(
        "OmniBiz Messaging `{}` listening on {base}  (store: {store}, bus: {bus}{})\n  \
         {console_line}REST API   {base}/api/messages/conversations\n  \
         Socket.IO  {ws}/socket.io   (socket.io-client: io(\"{base}\", {{ auth: {{ token }} }}))\n  \
         API docs   {base}/api/docs   (OpenAPI: {base}/api/openapi.json)\n  \
         health     {base}/healthz, {base}/readyz, metrics {base}/metrics\n  \
         files      {}\n  \
         {notify_line}{secret_line}\n  \
         Demo data, one-click console links and curl lines: run `cargo run --release -- seed` in another terminal\n  \
         A token for an existing account: `cargo run --release -- token --user <id>` or `--customer <id>`",
        target.name(),
        node.map(|n| format!(", node: {n}")).unwrap_or_default(),
        files.unwrap_or("uploads off (set OMNIBIZ_S3_BUCKET or OMNIBIZ_FILES_DIR)"),
    )
}

/// Resolves on the first Ctrl-C or SIGTERM. A second one, while the drain is
/// still under way, exits the process at once: once tokio handles SIGINT the
/// default action is gone, and a person at a terminal should not have to wait
/// out a drain window meant for a fleet. Nothing is lost by it: every change
/// is stored before it is published, and clients recover by `seq`.
pub async fn shutdown_signal() {
    any_signal().await;
    tokio::spawn(async {
        any_signal().await;
        tracing::warn!("second shutdown signal: exiting without waiting for the drain");
        std::process::exit(130);
    });
}

async fn any_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
