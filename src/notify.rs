//! Notifications as the targets configure them (see `omnibiz_service::notify`):
//! Web Push from a VAPID key (generated beside the JWT secret in `serve`),
//! emails over SMTP (or, in `serve` without SMTP, appended to a file).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use omnibiz_service::config::Settings;
use omnibiz_service::notify::email::{MailConfig, Mailer, Transport as MailTransport};
use omnibiz_service::notify::webpush::Vapid;
use omnibiz_service::notify::{Notifier, NotifyConfig};
use omnibiz_service::webhooks::guard::Guard;
use secrecy::ExposeSecret as _;

use crate::secret;

/// Web Push and its settings (see `omnibiz_service::notify`): a key from
/// the settings, or in `serve` one generated beside the JWT secret.
/// Not for gateways, which send no notifications.
pub(crate) fn notifier(
    settings: &Settings,
    serve: bool,
    guard: Guard,
    store: Arc<dyn omnibiz_store::Store>,
    jwt_secret: Option<&[u8]>,
    local: std::net::SocketAddr,
) -> anyhow::Result<Notifier> {
    let vapid = match secret::vapid_private_key(settings, serve)? {
        None => None,
        Some(key) => {
            let subject = match (&settings.vapid_subject, serve) {
                (Some(s), _) => s.clone(),
                (None, true) => "mailto:admin@localhost".to_owned(),
                (None, false) => anyhow::bail!(
                    "OMNIBIZ_VAPID_SUBJECT is required with OMNIBIZ_VAPID_PRIVATE_KEY (a mailto: or https: contact for push services)"
                ),
            };
            Some(Arc::new(Vapid::from_private(&key, &subject).context("OMNIBIZ_VAPID_PRIVATE_KEY")?))
        }
    };
    let notifier = Notifier::new(
        store,
        NotifyConfig {
            vapid,
            push_delay: Duration::from_millis(settings.push_delay_ms),
            push_ttl: Duration::from_secs(settings.push_ttl_secs),
            max_subscriptions: settings.push_max_subscriptions,
            retry_base: Duration::from_millis(settings.webhook_retry_base_ms),
            timeout: Duration::from_millis(settings.webhook_timeout_ms),
            guard,
        },
    );
    Ok(match mailer(settings, serve, jwt_secret, local)? {
        Some(m) => notifier.with_mailer(Arc::new(m)),
        None => notifier,
    })
}

/// Notification emails: over SMTP when `OMNIBIZ_SMTP_URL` is set; in
/// `serve` without it, appended to a file; otherwise none.
fn mailer(
    settings: &Settings,
    serve: bool,
    jwt_secret: Option<&[u8]>,
    local: std::net::SocketAddr,
) -> anyhow::Result<Option<Mailer>> {
    let (transport, from) = match (&settings.smtp_url, serve) {
        (Some(url), _) => {
            let timeout = Duration::from_millis(settings.webhook_timeout_ms.max(5_000));
            let smtp = MailTransport::smtp(url.expose_secret(), timeout).context("OMNIBIZ_SMTP_URL")?;
            let from = settings.mail_from.clone().context("OMNIBIZ_MAIL_FROM is required with OMNIBIZ_SMTP_URL")?;
            (smtp, from)
        }
        (None, true) => {
            let path = settings.mail_log.clone().unwrap_or_else(|| settings.data_dir.join("mail.log"));
            let from = settings.mail_from.clone().unwrap_or_else(|| "OmniBiz <notifications@localhost>".into());
            (MailTransport::File(path), from)
        }
        (None, false) => return Ok(None),
    };
    let from = from.parse().with_context(|| format!("OMNIBIZ_MAIL_FROM: {from:?} is not a mailbox"))?;
    let key = match (&settings.mail_signing_key, jwt_secret) {
        (Some(k), _) => {
            let k = k.expose_secret().as_bytes();
            secret::check_strength(k, "OMNIBIZ_MAIL_SIGNING_KEY")?;
            Mailer::derive_key(k)
        }
        (None, Some(jwt)) => Mailer::derive_key(jwt),
        (None, None) => anyhow::bail!(
            "notification emails need OMNIBIZ_MAIL_SIGNING_KEY (the same on every pod) when there is no JWT_SECRET"
        ),
    };
    let link_base = settings.public_url.clone().unwrap_or_else(|| format!("http://{local}"));
    let cfg = MailConfig {
        from,
        default_delay: Duration::from_secs(settings.email_delay_secs),
        link_base,
        reply_domain: settings.mail_reply_domain.clone(),
        reply_ttl: Duration::from_secs(settings.mail_reply_ttl_days * 86_400),
        inbound_secret: settings.inbound_email_secret.clone(),
    };
    Ok(Some(Mailer::new(cfg, transport, key)))
}
