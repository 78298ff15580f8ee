//! Voice messages across an `api` and two gateways over a real S3-protocol
//! server: recordings in every container browsers write (and MP3) are
//! measured on upload, the other side's socket receives the duration and
//! waveform with the message, and hostile or video files are refused with
//! nothing left in the bucket.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::cluster::{TestCluster, open_over_http};
use crate::common::s3::S3Server;
use crate::common::sio::SioClient;
use crate::common::{business, upload_file as upload};

const FIXTURES: [(&str, &[u8], &str); 6] = [
    ("voice.webm", include_bytes!("../../shared/service/testdata/voice.webm"), "audio/webm"),
    ("voice.ogg", include_bytes!("../../shared/service/testdata/voice.ogg"), "audio/ogg"),
    ("voice.m4a", include_bytes!("../../shared/service/testdata/voice.m4a"), "audio/mp4"),
    ("voice-fragmented.mp4", include_bytes!("../../shared/service/testdata/voice-fragmented.mp4"), "audio/mp4"),
    ("voice-opus.mp4", include_bytes!("../../shared/service/testdata/voice-opus.mp4"), "audio/mp4"),
    ("voice.mp3", include_bytes!("../../shared/service/testdata/voice.mp3"), "audio/mpeg"),
];
const VIDEO: &[u8] = include_bytes!("../../shared/service/testdata/video.webm");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_messages_are_measured_and_reach_the_other_gateway() {
    let s3 = S3Server::start("omnibiz-voice").await;
    let env: Vec<(&str, String)> = s3.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cluster = TestCluster::start(1, 2, &env).await;
    let store = cluster.store().await;
    let (api, gws) = (cluster.api_urls()[0].clone(), cluster.gateway_urls());
    let b = business(&store, "Voices", 1).await;
    let conv = open_over_http(&api, &b.owner_token, &b.customers[0].id.to_hex()).await;
    let http = reqwest::Client::new();
    let mut customer = SioClient::connect(&gws[0], Some(&b.customer_tokens[0])).await.expect("customer");
    let mut owner = SioClient::connect(&gws[1], Some(&b.owner_token)).await.expect("owner");
    for c in [&mut customer, &mut owner] {
        assert_eq!(c.call("join_conversation", json!(conv)).await["ok"], true);
    }

    for (name, bytes, mime) in FIXTURES {
        let (status, body) = upload(&http, &api, &b.customer_tokens[0], &conv, name, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        let att = &body["attachment"];
        assert_eq!(att["type"], mime, "{name}: the type comes from the bytes");
        let ms = att["audio"]["durationMs"].as_u64().unwrap_or_else(|| panic!("{name}: {att}"));
        assert!((1400..=1600).contains(&ms), "{name}: {ms} ms for a 1.5 s recording");
        let wave: Vec<u64> =
            att["audio"]["waveform"].as_array().expect("waveform").iter().filter_map(Value::as_u64).collect();
        assert_eq!((wave.len(), wave.iter().max()), (64, Some(&100)), "{name}: {wave:?}");
        // Sent over gateway 1; the owner on gateway 2 gets the measurements with the message.
        let id = att["id"].as_str().expect("id").to_owned();
        let ack = customer
            .call(
                "send_message",
                json!({"conversationId": conv, "message": "voice message", "attachments": [{"id": id}]}),
            )
            .await;
        assert_eq!(ack["ok"], true, "{name}: {ack}");
        let got = owner.expect("message_received").await;
        assert_eq!(got["attachments"][0]["audio"], att["audio"], "{name}");
        // The other side downloads the very bytes, as a file, never a page.
        let r = http
            .get(format!("{api}/api/messages/attachments/{id}/content"))
            .bearer_auth(&b.owner_token)
            .send()
            .await
            .expect("download");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], mime);
        assert_eq!(r.bytes().await.expect("body").as_ref(), bytes, "{name}");
    }
    // History carries them too.
    let history: Value = http
        .get(format!("{api}/api/messages/conversations/{conv}"))
        .bearer_auth(&b.owner_token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    let measured = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["attachments"][0]["audio"]["durationMs"].is_u64())
        .count();
    assert_eq!(measured, FIXTURES.len(), "{history}");

    // Refused, each with its reason, and nothing of them left in the bucket.
    let before = s3.keys().await.len();
    let (status, body) = upload(&http, &api, &b.customer_tokens[0], &conv, "clip.webm", VIDEO).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("video")), "{body}");
    let mut hostile = FIXTURES[0].1.to_vec();
    // The Tracks element (its last mention: the first is in the SeekHead)
    // declaring a size far past the end of the file.
    let tracks = hostile.windows(4).rposition(|w| w == [0x16, 0x54, 0xAE, 0x6B]).expect("Tracks");
    hostile[tracks + 4..tracks + 12].copy_from_slice(&[0x01, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0]);
    let (status, body) = upload(&http, &api, &b.customer_tokens[0], &conv, "evil.webm", &hostile).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["success"], false);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("audio")), "{body}");
    let (status, body) = upload(&http, &api, &b.customer_tokens[0], &conv, "half.ogg", &FIXTURES[1].1[..60]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(s3.keys().await.len(), before, "refused files leave nothing behind");
}
