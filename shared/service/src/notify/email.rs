//! Notification emails: one per conversation burst that stays unread, with
//! a signed reply address (reply by email) and one-click unsubscribe
//! (RFC 8058).
//!
//! # Tokens
//! Both are HMAC-SHA256 under the mail key (`OMNIBIZ_MAIL_SIGNING_KEY`, or
//! one derived from `JWT_SECRET`), truncated to 80 bits, hex (local parts
//! are case-insensitive on many servers; hex survives being lowercased):
//! - reply: `r-<side><conversation><expiry>.<mac>` in the local part — whose
//!   side of which conversation may answer, until when. The sender's `From`
//!   must also be that person's address.
//! - unsubscribe: `<side><person>.<mac>` — whose email notifications to turn off.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message as Email, Tokio1Executor};
use omnibiz_domain::{ConversationId, Message, ObjectId, Party, Side};
use sha2::Sha256;

/// The line above which a reply is read; everything from it down is the quoted email.
pub const REPLY_MARKER: &str = "—— Reply above this line to answer ——";
/// Messages an email shows at most (the latest unread ones).
pub const MESSAGES_PER_EMAIL: usize = 5;
/// Characters of each message an email shows.
const CHARS_PER_MESSAGE: usize = 1_000;
/// Bytes of MAC kept in a token.
const MAC_BYTES: usize = 10;

/// How notification emails are made (`mail_*` settings).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `From:` (the business's name is put in front of it for customers).
    pub from: Mailbox,
    /// How long a message stays unread before it is emailed, unless the business chose otherwise.
    pub default_delay: Duration,
    /// Where links point: `https://chat.example.com` (the console and the unsubscribe endpoint).
    pub link_base: String,
    /// Replies go to `r-…@<reply_domain>`; `None`: no reply by email.
    pub reply_domain: Option<String>,
    /// How long a reply address stays valid.
    pub reply_ttl: Duration,
    /// What the inbound endpoint requires as a bearer token or basic-auth password, if anything.
    pub inbound_secret: Option<secrecy::SecretString>,
}

/// Where emails go.
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// Appended to a file (`serve` without SMTP): for trying it out, never for production.
    File(PathBuf),
}

impl Transport {
    /// SMTP from a URL: `smtp://user:pass@host:587?tls=required` (STARTTLS),
    /// `smtps://user:pass@host:465`, or `smtp://host:25` (a local relay, no TLS).
    pub fn smtp(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let t = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| anyhow::anyhow!("not an SMTP URL ({e})"))?
            .timeout(Some(timeout))
            .build();
        Ok(Self::Smtp(t))
    }
}

/// Why an email was not sent, and whether trying again may help.
#[derive(Debug)]
pub struct SendFailure {
    pub transient: bool,
    pub reason: String,
}

/// Signs and checks tokens, composes and sends emails.
pub struct Mailer {
    cfg: MailConfig,
    transport: Transport,
    key: [u8; 32],
    file: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

/// What a reply address says, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub conversation: ConversationId,
    pub side: Side,
    pub expires: DateTime<Utc>,
}

/// Why a reply address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Forged,
    Expired,
}

/// One message of the burst an email reports.
pub struct Line<'a> {
    pub sender: &'a str,
    pub message: &'a Message,
}

/// Everything an email says.
pub struct Burst<'a> {
    pub to: Mailbox,
    pub recipient: Party,
    pub conversation: ConversationId,
    pub business_name: &'a str,
    /// The other person's name (who wrote).
    pub sender_name: &'a str,
    pub lines: Vec<Line<'a>>,
    /// Unread messages in all (the email shows the last few).
    pub unread: i64,
    /// Whether a reply by email can answer (a reply address names a side
    /// of the conversation: a group's customers get none).
    pub can_reply: bool,
}

impl Mailer {
    pub fn new(cfg: MailConfig, transport: Transport, key: [u8; 32]) -> Self {
        Self { cfg, transport, key, file: tokio::sync::Mutex::new(()) }
    }

    /// A key for tokens derived from the JWT secret (when no mail key is configured).
    pub fn derive_key(jwt_secret: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(jwt_secret).expect("HMAC takes any key length");
        mac.update(b"omnibiz mail tokens v1");
        mac.finalize().into_bytes().into()
    }

    pub fn config(&self) -> &MailConfig {
        &self.cfg
    }

    /// Where emails go, for the start-up banner.
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "emails over SMTP".into(),
            Transport::File(p) => format!("emails appended to {} (no OMNIBIZ_SMTP_URL)", p.display()),
        }
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(purpose);
        mac.update(data);
        mac
    }

    fn sign(&self, purpose: &[u8], data: &[u8]) -> String {
        let tag = self.mac(purpose, data).finalize().into_bytes();
        format!("{}.{}", hex::encode(data), hex::encode(&tag[..MAC_BYTES]))
    }

    fn verify(&self, purpose: &[u8], token: &str) -> Result<Vec<u8>, TokenError> {
        let (data, tag) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let data = hex::decode(data).map_err(|_| TokenError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| TokenError::Malformed)?;
        if tag.len() != MAC_BYTES {
            return Err(TokenError::Malformed);
        }
        self.mac(purpose, &data).verify_truncated_left(&tag).map_err(|_| TokenError::Forged)?;
        Ok(data)
    }

    /// Whether an inbound request may post mail: no secret configured, or this one.
    pub fn inbound_allowed(&self, credential: Option<&str>) -> bool {
        use secrecy::ExposeSecret as _;
        match (&self.cfg.inbound_secret, credential) {
            (None, _) => true,
            (Some(want), Some(got)) => {
                // Compared as MACs, in constant time (the hmac crate's `verify_slice`).
                let want = self.mac(b"inbound", want.expose_secret().as_bytes()).finalize().into_bytes();
                self.mac(b"inbound", got.as_bytes()).verify_slice(&want).is_ok()
            }
            (Some(_), None) => false,
        }
    }

    /// The local part of the reply address for `side` of `conversation`.
    pub fn reply_token(&self, conversation: ConversationId, side: Side, now: DateTime<Utc>) -> String {
        let expires = now + chrono::Duration::from_std(self.cfg.reply_ttl).unwrap_or_default();
        let mut data = Vec::with_capacity(17);
        data.push(side_byte(side));
        data.extend_from_slice(&conversation.oid().bytes());
        data.extend_from_slice(&u32::try_from(expires.timestamp()).unwrap_or(u32::MAX).to_be_bytes());
        format!("r-{}", self.sign(b"reply", &data))
    }

    /// Checks a reply address's local part (case-insensitive).
    pub fn check_reply_token(&self, local: &str, now: DateTime<Utc>) -> Result<ReplyTo, TokenError> {
        let token = local.to_ascii_lowercase();
        let token = token.strip_prefix("r-").ok_or(TokenError::Malformed)?;
        let data = self.verify(b"reply", token)?;
        let [side, rest @ ..] = data.as_slice() else { return Err(TokenError::Malformed) };
        let (oid, exp) = rest.split_at_checked(12).ok_or(TokenError::Malformed)?;
        let exp: [u8; 4] = exp.try_into().map_err(|_| TokenError::Malformed)?;
        let oid: [u8; 12] = oid.try_into().map_err(|_| TokenError::Malformed)?;
        let expires = DateTime::from_timestamp(i64::from(u32::from_be_bytes(exp)), 0).ok_or(TokenError::Malformed)?;
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(ReplyTo {
            conversation: ConversationId(ObjectId::from_bytes(oid)),
            side: byte_side(*side).ok_or(TokenError::Malformed)?,
            expires,
        })
    }

    /// The token of a person's one-click unsubscribe link.
    pub fn unsubscribe_token(&self, party: Party) -> String {
        let mut data = vec![side_byte(party.side())];
        data.extend_from_slice(&party.oid().bytes());
        self.sign(b"unsubscribe", &data)
    }

    pub fn check_unsubscribe_token(&self, token: &str) -> Result<Party, TokenError> {
        let data = self.verify(b"unsubscribe", token.trim())?;
        let [side, oid @ ..] = data.as_slice() else { return Err(TokenError::Malformed) };
        let oid: [u8; 12] = oid.try_into().map_err(|_| TokenError::Malformed)?;
        Ok(Party::of(byte_side(*side).ok_or(TokenError::Malformed)?, ObjectId::from_bytes(oid)))
    }

    /// The email for a burst: text and HTML, the reply address, one-click unsubscribe.
    pub fn compose(&self, b: &Burst<'_>, now: DateTime<Utc>) -> Result<Email, String> {
        let link = format!("{}/?conversation={}", self.cfg.link_base.trim_end_matches('/'), b.conversation.to_hex());
        let unsubscribe = format!(
            "{}/api/notifications/unsubscribe?t={}",
            self.cfg.link_base.trim_end_matches('/'),
            self.unsubscribe_token(b.recipient)
        );
        let subject = match b.unread {
            ..=1 => format!("New message from {}", b.sender_name),
            n => format!("{n} new messages from {}", b.sender_name),
        };
        let from_name = match b.recipient.side() {
            Side::Customer => b.business_name.to_owned(),
            Side::Owner => format!("{} (OmniBiz)", b.sender_name),
        };
        let from = Mailbox::new(Some(from_name.clone()), self.cfg.from.email.clone());
        let reply = self.cfg.reply_domain.as_ref().filter(|_| b.can_reply).map(|domain| {
            let local = self.reply_token(b.conversation, b.recipient.side(), now);
            format!("{local}@{domain}")
        });
        let mut text = String::new();
        let mut html = String::from("<div style=\"font-family:sans-serif\">");
        if reply.is_some() {
            text.push_str(REPLY_MARKER);
            text.push_str("\n\n");
            html.push_str(&format!("<p style=\"color:#888\">{}</p>", escape(REPLY_MARKER)));
        }
        let hidden = b.unread - i64::try_from(b.lines.len()).unwrap_or(0);
        if hidden > 0 {
            text.push_str(&format!("… and {hidden} earlier\n\n"));
            html.push_str(&format!("<p style=\"color:#888\">… and {hidden} earlier</p>"));
        }
        for l in &b.lines {
            let body = line_text(l.message);
            text.push_str(&format!("{}: {}\n\n", l.sender, body));
            html.push_str(&format!("<p><b>{}</b>: {}</p>", escape(l.sender), escape(&body).replace('\n', "<br>")));
        }
        text.push_str(&format!("Open the conversation: {link}\n"));
        html.push_str(&format!("<p><a href=\"{}\">Open the conversation</a></p>", escape(&link)));
        let footer = match &reply {
            Some(_) => "Reply to this email to answer. ",
            None => "",
        };
        text.push_str(&format!("\n--\n{footer}Stop these emails: {unsubscribe}\n"));
        html.push_str(&format!(
            "<p style=\"color:#888;font-size:smaller\">{footer}<a href=\"{}\">Stop these emails</a></p></div>",
            escape(&unsubscribe)
        ));
        let mut builder = Email::builder()
            .from(from)
            .to(b.to.clone())
            .subject(subject)
            .raw_header(HeaderValue::new(HeaderName::new_from_ascii_str("Auto-Submitted"), "auto-generated".into()))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{unsubscribe}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
        if let Some(r) = reply {
            let mailbox: Mailbox = format!("{} <{r}>", quote_name(&from_name))
                .parse()
                .map_err(|e| format!("the reply address {r}: {e}"))?;
            builder = builder.reply_to(mailbox);
        }
        builder
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(html)),
            )
            .map_err(|e| format!("composing the email: {e}"))
    }

    /// Sends one email.
    pub async fn send(&self, email: Email) -> Result<(), SendFailure> {
        match &self.transport {
            Transport::Smtp(t) => t.send(email).await.map(drop).map_err(|e| SendFailure {
                // A permanent refusal (5xx) stays one; anything else (4xx, connection) may pass later.
                transient: !e.is_permanent(),
                reason: format!("SMTP: {e}"),
            }),
            Transport::File(path) => {
                use tokio::io::AsyncWriteExt as _;
                let _one_at_a_time = self.file.lock().await;
                let mut bytes = email.formatted();
                bytes.extend_from_slice(b"\n\n");
                let write = async {
                    let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
                    f.write_all(&bytes).await
                };
                write.await.map_err(|e| SendFailure {
                    transient: true,
                    reason: format!("appending to {}: {e}", path.display()),
                })
            }
        }
    }
}

fn side_byte(side: Side) -> u8 {
    match side {
        Side::Owner => b'o',
        Side::Customer => b'c',
    }
}

fn byte_side(b: u8) -> Option<Side> {
    match b {
        b'o' => Some(Side::Owner),
        b'c' => Some(Side::Customer),
        _ => None,
    }
}

/// What a message says in an email.
fn line_text(m: &Message) -> String {
    if !m.content.is_empty() {
        return omnibiz_domain::preview(&m.content, CHARS_PER_MESSAGE);
    }
    match m.attachments.as_slice() {
        [] => String::new(),
        [a] if a.audio.is_some() => "(a voice message)".into(),
        [a] => format!("(an attachment: {})", a.name),
        many => format!("({} attachments)", many.len()),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A display name as a quoted string (RFC 5322), whatever it contains.
fn quote_name(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| !c.is_control()).collect();
    format!("\"{}\"", cleaned.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The new text of a reply: everything above our marker, the quote header
/// in front of it (`On … wrote:`), quoted lines and the signature removed.
pub fn reply_text(body: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if t.contains("Reply above this line") || t == "-- " || line == "-- " || t.starts_with("-----Original Message")
        {
            break;
        }
        if t.starts_with('>') {
            continue;
        }
        kept.push(line);
    }
    // "On Tue, 1 Dec 2026 at 10:00, Acme <r-…@…> wrote:" (possibly wrapped over two lines) before the quote.
    while let Some(last) = kept.last() {
        let t = last.trim();
        if t.is_empty() || t.ends_with("wrote:") || (t.starts_with("On ") && t.contains('@')) {
            kept.pop();
        } else {
            break;
        }
    }
    kept.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        let cfg = MailConfig {
            from: "OmniBiz <notify@example.com>".parse().expect("mailbox"),
            default_delay: Duration::from_secs(300),
            link_base: "https://chat.example.com".into(),
            reply_domain: Some("reply.example.com".into()),
            reply_ttl: Duration::from_secs(30 * 86_400),
            inbound_secret: None,
        };
        Mailer::new(cfg, Transport::File(PathBuf::from("/dev/null")), Mailer::derive_key(b"a-test-secret"))
    }

    #[test]
    fn reply_tokens_round_trip_and_refuse_forgery_expiry_and_other_keys() {
        let m = mailer();
        let now = Utc::now();
        let c = ConversationId::new();
        let t = m.reply_token(c, Side::Customer, now);
        assert!(t.len() + "@reply.example.com".len() < 254 && t.len() <= 64, "a local part: {} chars", t.len());
        let got = m.check_reply_token(&t.to_ascii_uppercase(), now).expect("valid, whatever the case");
        assert_eq!((got.conversation, got.side), (c, Side::Customer));
        // One flipped character of the data or of the tag.
        let mut forged = t.clone().into_bytes();
        forged[5] = if forged[5] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).expect("ascii");
        assert_eq!(m.check_reply_token(&forged, now), Err(TokenError::Forged));
        let later = now + chrono::Duration::days(31);
        assert_eq!(m.check_reply_token(&t, later), Err(TokenError::Expired));
        let other = Mailer::new(m.cfg.clone(), Transport::File(PathBuf::from("/dev/null")), [9; 32]);
        assert_eq!(other.check_reply_token(&t, now), Err(TokenError::Forged));
        assert_eq!(m.check_reply_token("r-zz.zz", now), Err(TokenError::Malformed));
        assert_eq!(m.check_reply_token("support", now), Err(TokenError::Malformed));
        let p = Party::Owner(omnibiz_domain::UserId::new());
        assert_eq!(m.check_unsubscribe_token(&m.unsubscribe_token(p)), Ok(p));
        assert_eq!(
            m.check_unsubscribe_token(&t[2..]),
            Err(TokenError::Forged),
            "a reply token is not an unsubscribe one"
        );
    }

    #[test]
    fn replies_lose_the_quote_and_the_signature() {
        let body = "Yes, Tuesday works.\nThanks!\n\nOn Tue, 1 Dec 2026 at 10:00, Acme Ltd <r-ab.cd@reply.example.com>\nwrote:\n> —— Reply above this line to answer ——\n> Acme: when can we deliver?\n";
        assert_eq!(reply_text(body), "Yes, Tuesday works.\nThanks!");
        assert_eq!(reply_text("Sure\n-- \nSent from my phone\n"), "Sure");
        assert_eq!(reply_text("Fine\n\n—— Reply above this line to answer ——\nAcme: hi"), "Fine");
        assert_eq!(reply_text("> only a quote\n"), "");
    }
}
