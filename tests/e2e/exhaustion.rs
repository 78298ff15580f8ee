//! Resource exhaustion: work a client starts and walks away from stays
//! bounded, and so do connections that never finish their headers or never
//! sign in.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use omnibiz_store::Store;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::common::{business, mongo_uri, omnibiz_process};

/// A valid grayscale PNG of `side`×`side` black pixels: a few dozen KiB on
/// the wire, `side²` bytes once decoded (a decompression bomb within the
/// decoder's limits).
fn bomb_png(side: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&u32::try_from(data.len()).expect("chunk size").to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grayscale, no interlace
    let row = vec![0u8; side as usize + 1]; // filter byte + pixels
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..side {
        z.write_all(&row).expect("compress");
    }
    let idat = z.finish().expect("compress");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// The peak resident memory of a process so far (`VmHWM`), in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kb / 1024
}

/// Twenty uploaders each send a PNG that decodes to 64 MiB and walk away
/// (the request also times out after 1 s). Thumbnail decodes run two at a
/// time (`files::DECODES`) whether or not anyone still waits for them, so the
/// process's peak memory stays under 2 × 64 MiB plus its baseline — 320 MiB
/// here, where unbounded decodes reach several times that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploaders_who_walk_away_do_not_multiply_thumbnail_decodes() {
    let files = tempfile::tempdir().expect("tempdir");
    let db = format!("omnibiz_bombs_{}", bson::oid::ObjectId::new());
    let files_dir = files.path().to_string_lossy().into_owned();
    let (server, base) = omnibiz_process(
        "api",
        &db,
        &[("OMNIBIZ_FILES_DIR", files_dir.as_str()), ("OMNIBIZ_REQUEST_TIMEOUT_SECS", "1")],
    )
    .await;
    let pid = server.id().expect("pid");
    let mongo = omnibiz_store::mongo::MongoStore::connect(&mongo_uri(), Some(&db)).await.expect("mongo");
    let store: Arc<dyn Store> = Arc::new(mongo.clone());
    let b = business(&store, "Bombs", 20).await;
    let http = reqwest::Client::new();
    let mut convs = Vec::new();
    for c in &b.customers {
        let r = http
            .post(format!("{base}/api/messages/conversations"))
            .bearer_auth(&b.owner_token)
            .json(&json!({"customerId": c.id.to_hex()}))
            .send()
            .await
            .expect("open");
        let body: serde_json::Value = r.json().await.expect("json");
        convs.push(body["conversation"]["id"].as_str().expect("id").to_owned());
    }
    let png = bomb_png(8192);
    assert!(png.len() < 200_000, "{} bytes on the wire", png.len());
    let baseline = peak_rss_mib(pid);

    // Two new uploaders every 300 ms, each gone after 400 ms.
    let mut waves = Vec::new();
    for (i, conv) in convs.iter().enumerate() {
        let url = format!("{base}/api/messages/conversations/{conv}/attachments");
        let req = http
            .post(url)
            .bearer_auth(&b.customer_tokens[i])
            .multipart(Form::new().part("file", Part::bytes(png.clone()).file_name("bomb.png")));
        waves.push(tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(400), req.send()).await;
        }));
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    for w in waves {
        w.await.expect("uploader");
    }
    // Decodes already started run to their end; give them time to peak.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let peak = peak_rss_mib(pid);
    println!("peak RSS {peak} MiB, baseline {baseline} MiB");
    assert!(peak < 320, "peak RSS {peak} MiB (baseline {baseline} MiB) with 20 walked-away 64 MiB decodes");
    let ready = http.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.status(), 200, "the server is still up");
    drop(server);
    mongo.drop_database().await.expect("drop test database");
}

async fn small_app(max_connections: usize) -> crate::common::TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let mut s = crate::common::settings(crate::common::Backend::Sqlite, dir.path(), "exhaustion");
    s.max_connections = max_connections;
    s.connect_timeout_secs = 2;
    s.header_timeout_secs = 2;
    crate::common::spawn_with(crate::common::Backend::Sqlite, s, omnibiz::app::Target::Serve, dir).await
}

/// Connections that trickle their request headers (a byte every 300 ms,
/// never finishing) are closed once the header timeout (2 s here) passes;
/// the server keeps answering everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = small_app(100).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        slow.push(s);
    }
    let started = std::time::Instant::now();
    let trickle = slow.into_iter().map(|mut s| {
        tokio::spawn(async move {
            let mut buf = [0u8; 256];
            for _ in 0..40 {
                // Closed by the server: a write fails or a read sees the end.
                if s.write_all(b"X").await.is_err() {
                    return true;
                }
                if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
                    match r {
                        Ok(0) | Err(_) => return true,
                        Ok(_) => {} // a 408, then the close
                    }
                }
            }
            false
        })
    });
    let trickle: Vec<_> = trickle.collect();
    let healthy = app.http.get(app.url("/healthz")).send().await.expect("healthz");
    assert_eq!(healthy.status(), 200, "others are served meanwhile");
    for t in trickle {
        assert!(t.await.expect("task"), "a slow-header connection was still open after 12 s");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "closed after {took:?}; the header timeout is 2 s");
    app.finish().await;
}

async fn handshake(http: &reqwest::Client, base: &str) -> reqwest::Response {
    http.get(format!("{base}/socket.io/?EIO=4&transport=polling")).send().await.expect("handshake")
}

fn sid_of(open: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&open[1..]).expect("open packet");
    v["sid"].as_str().expect("sid").to_owned()
}

/// Engine.IO sessions that never send CONNECT count against the
/// connection cap (the 11th handshake of a 10-connection gateway is 503)
/// and end after the connect timeout (2 s here), after which a client signs
/// in; a binary packet before CONNECT ends its session; a second POST while
/// one is in flight ends the session (nothing buffered per extra POST).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_that_never_sign_in_are_bounded() {
    let app = small_app(10).await;
    let b = business(&app.store, "Flood", 0).await;
    for _ in 0..10 {
        let r = handshake(&app.http, &app.base).await;
        assert_eq!(r.status(), 200);
    }
    let refused = handshake(&app.http, &app.base).await;
    assert_eq!(refused.status(), 503, "pre-CONNECT sessions fill the cap");
    assert!(refused.headers().contains_key("retry-after"));
    assert!(crate::common::sio::SioClient::connect(&app.base, Some(&b.owner_token)).await.is_err(), "full");
    let mut signed_in = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(c) = crate::common::sio::SioClient::connect(&app.base, Some(&b.owner_token)).await {
            signed_in = Some(c);
            break;
        }
    }
    assert!(signed_in.is_some(), "the silent sessions ended after the connect timeout");

    // A binary packet before CONNECT: the session ends.
    let open = handshake(&app.http, &app.base).await.text().await.expect("open");
    let sid = sid_of(&open);
    let url = format!("{}/socket.io/?EIO=4&transport=polling&sid={sid}", app.base);
    let r = app.http.post(&url).body(r#"451-["x",{"_placeholder":true,"num":0}]"#).send().await.expect("post");
    assert_eq!(r.status(), 400);
    let r = app.http.get(&url).send().await.expect("poll");
    assert_eq!(r.status(), 400, "the session is gone");

    // Overlapping POSTs: the first sends its body slowly; the second is refused and ends the session.
    let open = handshake(&app.http, &app.base).await.text().await.expect("open");
    let url = format!("{}/socket.io/?EIO=4&transport=polling&sid={}", app.base, sid_of(&open));
    let slow_body = futures_util::stream::unfold(0, |i| async move {
        if i == 2 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some((Ok::<_, std::io::Error>(bytes_of(if i == 0 { "4" } else { "0" })), i + 1))
    });
    let first = tokio::spawn({
        let (http, url) = (app.http.clone(), url.clone());
        async move { http.post(url).body(reqwest::Body::wrap_stream(slow_body)).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = app.http.post(&url).body("40").send().await.expect("post");
    assert_eq!(second.status(), 400, "a second POST while one is in flight");
    let _ = first.await;
    app.finish().await;
}

fn bytes_of(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}
