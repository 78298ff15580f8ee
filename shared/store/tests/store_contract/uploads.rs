//! Uploads and quick replies.

use super::*;

pub(crate) async fn uploads_are_claimed_once_and_confirmed(store: Dyn) {
    use omnibiz_domain::Upload;
    use omnibiz_domain::UploadId;
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let (o2, c2) = setup(&store).await;
    let (other, _) = store.get_or_create_conversation(&Participants::of(&o2, &c2), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let u = Upload {
        id: UploadId::new(),
        conversation_id: conv.id,
        uploader_id: me.clone(),
        uploader_side: Side::Customer,
        name: "a.png".into(),
        mime_type: "application/octet-stream".into(),
        size: None,
        has_thumbnail: false,
        audio: None,
        created_at: Utc::now() - Duration::seconds(5),
        claim: None,
        message_id: None,
        confirmed: false,
    };
    store.insert_upload(&u).await.expect("insert");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_none(), "still being written");
    assert!(store.finish_upload(u.id, "image/png", 1234, true, None).await.expect("finish"));
    let got = store.get_upload(u.id).await.expect("get").expect("exists");
    assert_eq!((got.mime_type.as_str(), got.size, got.has_thumbnail, got.audio), ("image/png", Some(1234), true, None));
    // A voice message's measurements are kept with its record.
    let voice = Upload { id: UploadId::new(), ..u.clone() };
    store.insert_upload(&voice).await.expect("insert");
    let info = AudioInfo { duration_ms: 1513, waveform: vec![0, 37, 100, 12] };
    assert!(store.finish_upload(voice.id, "audio/webm", 4878, false, Some(&info)).await.expect("finish"));
    assert_eq!(store.get_upload(voice.id).await.expect("get").expect("exists").audio, Some(info));
    store.delete_upload(voice.id).await.expect("delete");
    assert!(
        store.claim_upload(u.id, conv.id, &o.id.to_hex(), "k1").await.expect("claim").is_none(),
        "not the uploader"
    );
    assert!(store.claim_upload(u.id, other.id, &me, "k1").await.expect("claim").is_none(), "another conversation");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some());
    assert!(store.claim_upload(u.id, conv.id, &me, "k2").await.expect("claim").is_none(), "claimed by another send");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some(), "the same send, retried");
    // Unconfirmed and old enough: the sweeper's to look at.
    let stale = store.stale_uploads(Utc::now(), 10).await.expect("stale");
    assert_eq!(stale.iter().map(|x| x.id).collect::<Vec<_>>(), vec![u.id]);
    let mut m = new_message(conv.id, Side::Customer, &me, "file");
    m.attachments = vec![Attachment {
        id: Some(u.id.to_hex()),
        url: format!("/api/messages/attachments/{}/content", u.id),
        name: "a.png".into(),
        mime_type: "image/png".into(),
        size: 1234,
        thumbnail_url: None,
        audio: None,
    }];
    let stored = store.append_message(m).await.expect("append").expect("taken").into_message();
    assert_eq!(store.message_with_upload(conv.id, u.id).await.expect("find"), Some(stored.id));
    assert_eq!(store.message_with_upload(other.id, u.id).await.expect("find"), None);
    assert_eq!(store.message_with_upload(conv.id, UploadId::new()).await.expect("find"), None);
    store.confirm_uploads(&[u.id], stored.id).await.expect("confirm");
    let got = store.get_upload(u.id).await.expect("get").expect("exists");
    assert!(got.confirmed);
    assert_eq!(got.message_id, Some(stored.id));
    assert!(store.stale_uploads(Utc::now(), 10).await.expect("stale").is_empty(), "confirmed uploads stay");
    assert!(store.claim_upload(u.id, conv.id, &me, "k3").await.expect("claim").is_none(), "attached for good");
    assert!(store.claim_upload(u.id, conv.id, &me, "k1").await.expect("claim").is_some(), "its own send may retry");
    store.unconfirm_uploads(&[u.id]).await.expect("unconfirm");
    assert_eq!(store.stale_uploads(Utc::now(), 10).await.expect("stale").len(), 1);
    assert!(store.stale_uploads(Utc::now() - Duration::minutes(1), 10).await.expect("stale").is_empty(), "too young");
    store.delete_upload(u.id).await.expect("delete");
    assert!(store.get_upload(u.id).await.expect("get").is_none());
}

pub(crate) async fn quick_replies_keep_one_shortcut_per_owner(store: Dyn) {
    use omnibiz_domain::{QuickReply, QuickReplyId, Shortcut};
    let (o, _) = setup(&store).await;
    let (o2, _) = setup(&store).await;
    let reply = |owner: UserId, s: &str, content: &str| QuickReply {
        id: QuickReplyId::new(),
        owner,
        shortcut: Shortcut::parse(s).expect("shortcut"),
        content: content.into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let thanks = reply(o.id, "thanks", "Thank you!");
    assert!(store.insert_quick_reply(&thanks).await.expect("insert"));
    assert!(!store.insert_quick_reply(&reply(o.id, "thanks", "dup")).await.expect("insert"), "taken");
    assert!(store.insert_quick_reply(&reply(o2.id, "thanks", "another owner's")).await.expect("insert"));
    let mut hours = reply(o.id, "hours", "9 to 5");
    assert!(store.insert_quick_reply(&hours).await.expect("insert"));
    let listed: Vec<String> =
        store.list_quick_replies(o.id).await.expect("list").iter().map(|r| r.shortcut.as_str().to_owned()).collect();
    assert_eq!(listed, vec!["hours", "thanks"]);
    assert_eq!(store.find_quick_reply(o.id, "thanks").await.expect("find").map(|r| r.id), Some(thanks.id));
    assert!(store.find_quick_reply(o.id, "nope").await.expect("find").is_none());
    hours.shortcut = Shortcut::parse("thanks").expect("shortcut");
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), Some(false), "rename onto a taken shortcut");
    hours.shortcut = Shortcut::parse("open").expect("shortcut");
    hours.content = "10 to 6".into();
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), Some(true));
    assert_eq!(store.get_quick_reply(hours.id).await.expect("get").expect("exists").content, "10 to 6");
    assert!(store.delete_quick_reply(hours.id).await.expect("delete"));
    assert!(!store.delete_quick_reply(hours.id).await.expect("delete"));
    assert_eq!(store.save_quick_reply(&hours).await.expect("save"), None, "gone");
}
