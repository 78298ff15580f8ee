//! Notification emails through a real SMTP server (aiosmtpd, a separate
//! process: `tests/mail/smtp_sink.py`), read back with a MIME parser: one
//! email per unread burst after the delay, with a signed reply address and
//! one-click unsubscribe (RFC 8058); a reply posted as raw MIME to the
//! inbound endpoint arrives live on the other side; forged, replayed,
//! automatic and unauthenticated replies are refused; nothing for a reader
//! who read in time or who unsubscribed. On both stores.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail_parser::MessageParser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::sio::SioClient;
use crate::common::{Backend, TestApp, assert_error, business, open, settings, spawn_with};
use omnibiz::app::Target;

const INBOUND_SECRET: &str = "inbound-secret-for-the-tests-0123456789";

struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpSink {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (child, port) = crate::common::python_helper("tests/mail/smtp_sink.py", &[dir.path().as_os_str()]).await;
        Self { port, dir, _child: child }
    }

    /// Every email received so far, raw, in order.
    fn emails(&self) -> Vec<Vec<u8>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths.iter().map(|p| std::fs::read(p).expect("read")).collect()
    }

    /// The emails to `address`.
    fn to(&self, address: &str) -> Vec<Vec<u8>> {
        self.emails()
            .into_iter()
            .filter(|raw| {
                let m = MessageParser::default().parse(raw).expect("an email");
                m.to().and_then(|t| t.first()).and_then(|a| a.address()) == Some(address)
            })
            .collect()
    }

    async fn wait_for(&self, address: &str, n: usize) -> Vec<Vec<u8>> {
        for _ in 0..300 {
            let got = self.to(address);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{n} email(s) to {address}: the server has {}", self.to(address).len());
    }
}

async fn app(backend: Backend, smtp: &SmtpSink) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let db = format!("omnibiz_mail_{}", bson::oid::ObjectId::new());
    let mut s = settings(backend, dir.path(), &db);
    s.webhook_poll_ms = 50;
    s.webhook_retry_base_ms = 200;
    s.email_delay_secs = 2;
    s.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port).into());
    s.mail_from = Some("Notifications <notify@acme.example>".into());
    s.mail_reply_domain = Some("reply.acme.example".into());
    s.public_url = Some("https://chat.acme.example".into());
    s.inbound_email_secret = Some(INBOUND_SECRET.to_owned().into());
    spawn_with(backend, s, Target::Serve, dir).await
}

/// Long enough for an email that is not coming (due 2 s after the message) to have come.
async fn quiet_period() {
    tokio::time::sleep(Duration::from_millis(4_000)).await;
}

async fn inbound(app: &TestApp, raw: &str, secret: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.http.post(app.url("/api/notifications/inbound-email")).header("content-type", "message/rfc822");
    if let Some(s) = secret {
        req = req.bearer_auth(s);
    }
    let res = req.body(raw.to_owned()).send().await.expect("inbound");
    let status = res.status();
    (status, res.json().await.expect("json"))
}

fn reply(from: &str, to: &str, message_id: &str, text: &str, extra_headers: &str) -> String {
    format!(
        "From: Someone <{from}>\r\nTo: \"Acme\" <{to}>\r\nSubject: Re: your messages\r\nMessage-ID: <{message_id}>\r\n\
         Date: Fri, 4 Dec 2026 10:00:00 +0000\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         {text}\r\n\r\nOn Fri, 4 Dec 2026 at 09:58, Acme <{to}>\r\nwrote:\r\n> —— Reply above this line to answer ——\r\n> Earlier text\r\n"
    )
}

async fn emails(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = app(backend, &smtp).await;
    let b = business(&app.store, "Mail", 2).await;
    let (owner, c0, c1) = (&b.owner_token, &b.customer_tokens[0], &b.customer_tokens[1]);
    let (c0_addr, c1_addr, owner_addr) = (&b.customers[0].email, &b.customers[1].email, &b.owner.email);
    let (conv0, conv1) = (open(&app, &b, 0).await, open(&app, &b, 1).await);

    // One email for a burst of three, after the delay.
    for text in ["Your order is packed", "It leaves on Tuesday", "Does Tuesday suit you?"] {
        assert_eq!(app.send(owner, &conv0, text).await.0, StatusCode::CREATED);
    }
    let got = smtp.wait_for(c0_addr, 1).await;
    quiet_period().await;
    assert_eq!(smtp.to(c0_addr).len(), 1, "one email per burst, not one per message");
    let email = MessageParser::default().parse(&got[0]).expect("a MIME message");
    let from = email.from().and_then(|f| f.first()).expect("From");
    assert_eq!((from.name(), from.address()), (Some("Mail Ltd"), Some("notify@acme.example")));
    assert_eq!(email.subject(), Some("3 new messages from Mail Ltd"));
    assert_eq!(email.header_raw("Auto-Submitted").map(str::trim), Some("auto-generated"));
    assert_eq!(email.header_raw("List-Unsubscribe-Post").map(str::trim), Some("List-Unsubscribe=One-Click"));
    let unsubscribe = email.header_raw("List-Unsubscribe").expect("List-Unsubscribe").trim().to_owned();
    assert!(unsubscribe.starts_with("<https://chat.acme.example/api/notifications/unsubscribe?t="), "{unsubscribe}");
    let reply_to = email.reply_to().and_then(|r| r.first()).and_then(|a| a.address()).expect("Reply-To").to_owned();
    assert!(reply_to.starts_with("r-") && reply_to.ends_with("@reply.acme.example"), "{reply_to}");
    let text = email.body_text(0).expect("a text part").into_owned();
    for want in ["Your order is packed", "It leaves on Tuesday", "Does Tuesday suit you?", "Reply above this line"] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(text.contains(&format!("https://chat.acme.example/?conversation={conv0}")), "{text}");
    assert!(email.body_html(0).is_some_and(|h| h.contains("Does Tuesday suit you?")), "an HTML part too");

    // The reply, as the mail provider forwards it, reaches the owner live.
    let mut owner_socket = SioClient::connect(&app.base, Some(owner)).await.expect("owner connects");
    let raw = reply(c0_addr, &reply_to, "r1@mail.example", "Tuesday works for me.", "");
    let (status, body) = inbound(&app, &raw, Some(INBOUND_SECRET)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["message"]["content"], "Tuesday works for me.", "the quote is stripped: {body}");
    assert_eq!(body["message"]["senderRole"], "customer");
    let live = owner_socket.expect("new_message_notification").await;
    assert_eq!(live["conversationId"], conv0.as_str(), "{live}");

    // Refused: the same email again, no secret, a forged address, someone else's From, an auto-reply.
    let (status, body) = inbound(&app, &raw, Some(INBOUND_SECRET)).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, body) = inbound(&app, &reply(c0_addr, &reply_to, "r2@x", "hi", ""), None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let mut forged = reply_to.clone().into_bytes();
    forged[3] = if forged[3] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("ascii");
    let (status, body) = inbound(&app, &reply(c0_addr, &forged, "r3@x", "hi", ""), Some(INBOUND_SECRET)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = inbound(&app, &reply(c1_addr, &reply_to, "r4@x", "hi", ""), Some(INBOUND_SECRET)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let auto = reply(c0_addr, &reply_to, "r5@x", "I am out of office", "Auto-Submitted: auto-replied\r\n");
    let (status, body) = inbound(&app, &auto, Some(INBOUND_SECRET)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = inbound(&app, "not an email at all", Some(INBOUND_SECRET)).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (_, history) = app.get(&format!("/api/messages/conversations/{conv0}"), owner).await;
    let stored =
        history["messages"].as_array().expect("messages").iter().filter(|m| m["senderRole"] == "customer").count();
    assert_eq!(stored, 1, "only the genuine reply was stored: {history}");

    // The owner hears by email too when a customer writes and nobody is looking.
    owner_socket.disconnect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.send(c1, &conv1, "Is my parcel insured?").await;
    // (Customer 0's emailed reply is still unread too, now that the owner went offline: an email of its own.)
    let subjects = |raw: Vec<Vec<u8>>| -> Vec<String> {
        raw.iter().filter_map(|r| MessageParser::default().parse(r)?.subject().map(str::to_owned)).collect()
    };
    let mut found = false;
    for _ in 0..100 {
        if subjects(smtp.to(owner_addr)).iter().any(|s| s == "New message from Mail Customer 1") {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found, "the owner's email: {:?}", subjects(smtp.to(owner_addr)));

    // Read in time: no email. Unsubscribed: no email. A control that still gets one.
    let (_, m) = app.send(owner, &conv1, "read me quickly").await;
    let mid = m["message"]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.post(&format!("/api/messages/{mid}/read"), c1, json!({})).await.0, StatusCode::OK);
    let path = unsubscribe.trim_matches(['<', '>']).trim_start_matches("https://chat.acme.example").to_owned();
    let (status, body) = app.call(Method::POST, &path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, prefs) = app.get("/api/notifications/preferences", c0).await;
    assert_eq!(prefs["preferences"]["email"], false, "{prefs}");
    let (status, body) = app.call(Method::POST, "/api/notifications/unsubscribe?t=00.00", None, None).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    app.send(owner, &conv0, "after unsubscribing").await;
    quiet_period().await;
    assert_eq!(smtp.to(c0_addr).len(), 1, "unsubscribed: no more emails");
    assert_eq!(smtp.to(c1_addr).len(), 0, "read in time: no email");
    app.send(owner, &conv1, "and now unread").await;
    let got = smtp.wait_for(c1_addr, 1).await;
    let email = MessageParser::default().parse(&got[0]).expect("email");
    assert_eq!(email.subject(), Some("New message from Mail Ltd"));
    assert!(email.body_text(0).is_some_and(|t| t.contains("and now unread") && !t.contains("read me quickly")));
    app.finish().await;
}

/// A group: every member but the sender is emailed (the business too when
/// a customer wrote), each by their own read position; a customer's email
/// names the group and carries no reply address (a reply could not say
/// which member wrote it).
async fn group_emails(backend: Backend) {
    let smtp = SmtpSink::start().await;
    let app = app(backend, &smtp).await;
    let b = business(&app.store, "Club", 3).await;
    let owner = &b.owner_token;
    let addr = |i: usize| b.customers[i].email.clone();
    let ids: Vec<String> = b.customers.iter().map(|c| c.id.to_hex()).collect();
    let (status, v) =
        app.post("/api/groups", owner, json!({"title": "Book club", "customerIds": [ids[0], ids[1], ids[2]]})).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let g = v["conversation"]["id"].as_str().expect("id").to_owned();

    assert_eq!(app.send(&b.customer_tokens[0], &g, "Who brings the cake?").await.0, StatusCode::CREATED);
    for i in [1, 2] {
        let got = smtp.wait_for(&addr(i), 1).await;
        let email = MessageParser::default().parse(&got[0]).expect("email");
        assert_eq!(email.subject(), Some("New message from Book club (Club Ltd)"));
        assert!(email.body_text(0).is_some_and(|t| t.contains("Who brings the cake?")), "member {i}");
        assert!(email.reply_to().is_none(), "no reply address for a group's customer");
    }
    let got = smtp.wait_for(&b.owner.email, 1).await;
    let email = MessageParser::default().parse(&got[0]).expect("email");
    assert_eq!(email.subject(), Some("New message from Book club"));
    // Customer 2 reads the business's answer in time; customer 0 (who wrote
    // before) does not; customer 1's first email still stands for their burst.
    let (_, m) = app.send(owner, &g, "I will, see you at six").await;
    let mid = m["message"]["id"].as_str().expect("id").to_owned();
    assert_eq!(
        app.post(&format!("/api/messages/{mid}/read"), &b.customer_tokens[2], json!({})).await.0,
        StatusCode::OK
    );
    let got = smtp.wait_for(&addr(0), 1).await;
    let email = MessageParser::default().parse(&got[0]).expect("email");
    assert!(email.body_text(0).is_some_and(|t| t.contains("see you at six") && !t.contains("cake")), "only theirs");
    quiet_period().await;
    assert_eq!(smtp.to(&addr(0)).len(), 1);
    assert_eq!(smtp.to(&addr(1)).len(), 1, "still one burst for customer 1");
    assert_eq!(smtp.to(&addr(2)).len(), 1, "read in time: nothing more");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_emails_on_sqlite() {
    group_emails(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_emails_on_mongodb() {
    group_emails(Backend::Mongo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_on_sqlite() {
    emails(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emails_on_mongodb() {
    emails(Backend::Mongo).await;
}
