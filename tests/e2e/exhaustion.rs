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
