//! The webhook outbox: what each change records, fan-out, and the bodies.

use super::*;

/// Every reportable change records its outbox event with it; fan-out stores
/// deliveries once (idempotent) and clears the event; a no-op read records nothing.
pub(crate) async fn webhook_outbox_records_each_change_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let now = Utc::now();
    let (conv, created) = store.get_or_create_conversation(&Participants::of(&o, &c), now).await.expect("create");
    assert!(created);
    let (_, again) = store.get_or_create_conversation(&Participants::of(&o, &c), now).await.expect("get");
    assert!(!again, "an existing conversation records no second conversation.created");
    let m = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "hi"))
        .await
        .expect("append")
        .expect("taken");
    let patch = ConversationPatch { priority: Some(Priority::High), ..Default::default() };
    store.update_conversation(conv.id, &patch, Utc::now()).await.expect("update");
    store.mark_read(conv.id, Side::Owner, 1).await.expect("read");
    store.mark_read(conv.id, Side::Owner, 1).await.expect("read again: no advance");
    let events = store.pending_events(100).await.expect("pending");
    let kinds: Vec<HookEvent> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.len(), 4, "{events:#?}");
    for k in [
        HookEvent::ConversationCreated,
        HookEvent::MessageCreated,
        HookEvent::ConversationUpdated,
        HookEvent::MessageRead,
    ] {
        assert_eq!(kinds.iter().filter(|x| **x == k).count(), 1, "{k:?} once: {events:#?}");
    }
    let created_evt = events.iter().find(|e| e.kind == HookEvent::MessageCreated).expect("message.created");
    assert_eq!(created_evt.id, format!("msg_{}", m.message().id.to_hex()));
    assert_eq!(created_evt.data["content"], "hi");
    let read = events.iter().find(|e| e.kind == HookEvent::MessageRead).expect("message.read");
    assert_eq!(read.data["upToSeq"], 1);
    let upd = events.iter().find(|e| e.kind == HookEvent::ConversationUpdated).expect("updated");
    assert_eq!(upd.data["priority"], "high");

    // Fan-out: deliveries stored once even when done twice; the event is gone after.
    let endpoint = EndpointId::new();
    let delivery = |e: &OutboxEvent| {
        let id = format!("{}.{}", e.id, endpoint.to_hex());
        pending_delivery(id, Target::Webhook(endpoint), o.id, (&e.id, e.kind), conv.id, now)
    };
    for e in &events {
        let d = [delivery(e)];
        store.fan_out(e, &d).await.expect("fan out");
        store.fan_out(e, &d).await.expect("fan out again (a pod died in between)");
    }
    assert!(store.pending_events(100).await.expect("pending").is_empty());
    let listed = store.list_deliveries(endpoint, None, 100).await.expect("list");
    assert_eq!(listed.len(), 4);

    // Leases: two claimers never get the same delivery; the holder alone finishes it.
    let later = Utc::now() + Duration::seconds(30);
    let any = OwnerShare::unlimited();
    let (a, b) = tokio::join!(
        store.claim_deliveries("a", Utc::now(), later, 3, &any),
        store.claim_deliveries("b", Utc::now(), later, 3, &any)
    );
    let (a, b) = (a.expect("claim a"), b.expect("claim b"));
    assert_eq!(a.len() + b.len(), 4, "every due delivery claimed once");
    assert!(a.iter().all(|x| b.iter().all(|y| x.id != y.id)), "no delivery claimed twice");
    assert!(
        store.claim_deliveries("c", Utc::now(), later, 10, &OwnerShare::unlimited()).await.expect("claim c").is_empty(),
        "leased"
    );
    let mut d = a.first().or(b.first()).expect("one").clone();
    let holder = if a.iter().any(|x| x.id == d.id) { "a" } else { "b" };
    d.status = DeliveryStatus::Succeeded;
    d.attempts = 1;
    assert!(!store.finish_delivery(&d, "intruder", Utc::now()).await.expect("finish"), "only the holder finishes");
    assert!(store.finish_delivery(&d, holder, Utc::now()).await.expect("finish"));
    let got = store.get_delivery(&d.id).await.expect("get").expect("exists");
    assert_eq!((got.status, got.attempts), (DeliveryStatus::Succeeded, 1));
    // An expired lease is claimed again.
    let expired = store
        .claim_deliveries(
            "d",
            Utc::now() + Duration::seconds(31),
            later + Duration::seconds(60),
            10,
            &OwnerShare::unlimited(),
        )
        .await
        .expect("claim d");
    assert_eq!(expired.len(), 3, "the unfinished ones, once their lease expired");
}

/// A claim takes the earliest due first but at most each owner's room: an
/// owner with a backlog due earlier does not take every slot, and one whose
/// slots are all held gets none.
pub(crate) async fn claims_share_out_among_owners(store: Dyn) {
    let (busy, calm) = (UserId(bson::oid::ObjectId::new()), UserId(bson::oid::ObjectId::new()));
    let endpoint = EndpointId::new();
    let now = Utc::now();
    let delivery = |owner: UserId, i: i64| {
        let at = now - Duration::seconds(100 - i);
        let id = format!("d{i}.{}", owner.to_hex());
        let event = format!("e{i}");
        pending_delivery(
            id,
            Target::Webhook(endpoint),
            owner,
            (&event, HookEvent::MessageCreated),
            ConversationId::new(),
            at,
        )
    };
    // The busy owner's ten are all due before the calm owner's two.
    let mut all: Vec<Delivery> = (0..10).map(|i| delivery(busy, i)).collect();
    all.extend((50..52).map(|i| delivery(calm, i)));
    let event = OutboxEvent {
        id: "e-share".into(),
        kind: HookEvent::MessageCreated,
        conversation: ConversationId::new(),
        at: now,
        data: serde_json::json!({}),
    };
    store.fan_out(&event, &all).await.expect("fan out");
    let later = now + Duration::seconds(30);
    let share = OwnerShare { per_owner: 3, held: [(busy, 1)].into_iter().collect() };
    let got = store.claim_deliveries("a", now, later, 6, &share).await.expect("claim");
    let of = |o: UserId| got.iter().filter(|d| d.owner == o).count();
    assert_eq!((of(busy), of(calm)), (2, 2), "busy: 3 minus the one held; calm: both: {got:#?}");
    assert!(
        got.iter()
            .filter(|d| d.owner == busy)
            .all(|d| d.id == "d0.".to_owned() + &busy.to_hex() || d.id == "d1.".to_owned() + &busy.to_hex()),
        "the earliest due: {got:#?}"
    );
    let full = OwnerShare { per_owner: 3, held: [(busy, 3)].into_iter().collect() };
    assert!(
        store.claim_deliveries("b", now, later, 6, &full).await.expect("claim").is_empty(),
        "busy has no room, calm's are leased"
    );
}

pub(crate) async fn message_changes_record_their_webhook_events(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let m = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "hi"))
        .await
        .expect("append")
        .expect("taken");
    let m = m.into_message();
    let drain = |store: Dyn| async move {
        let events = store.pending_events(100).await.expect("pending");
        for e in &events {
            store.fan_out(e, &[]).await.expect("fan out");
        }
        events
    };
    drain(Arc::clone(&store)).await;
    store.edit_message(m.id, m.conversation_id, "hi, edited", Utc::now()).await.expect("edit").expect("exists");
    store
        .edit_message(m.id, m.conversation_id, "hi, edited twice", Utc::now() + Duration::milliseconds(5))
        .await
        .expect("edit");
    store
        .delete_message(m.id, m.conversation_id, Utc::now() + Duration::milliseconds(10))
        .await
        .expect("delete")
        .expect("existed");
    assert!(
        store.delete_message(m.id, m.conversation_id, Utc::now()).await.expect("delete").is_none(),
        "a second delete records nothing"
    );
    let events = drain(Arc::clone(&store)).await;
    let got: Vec<(HookEvent, String)> =
        events.iter().map(|e| (e.kind, e.data["content"].as_str().unwrap_or("-").to_owned())).collect();
    assert_eq!(
        got,
        vec![
            (HookEvent::MessageUpdated, "hi, edited".to_owned()),
            (HookEvent::MessageUpdated, "hi, edited twice".to_owned()),
            (HookEvent::MessageDeleted, "-".to_owned()),
        ]
    );
    assert!(events.iter().all(|e| e.data["messageId"] == m.id.to_hex() && e.conversation == conv.id));
    assert!(store.pending_events(100).await.expect("pending").is_empty(), "fanned out once");
}

/// A backlog larger than a pass drains in passes of at most the limit, each
/// event taken once: the outbox's reads need no order to make progress.
pub(crate) async fn an_outbox_backlog_drains_in_passes_each_event_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let mut expected = std::collections::BTreeSet::from([HookEvent::ConversationCreated.as_str().to_owned()]);
    for i in 0..25 {
        let m = store
            .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("m{i}")))
            .await
            .expect("append")
            .expect("taken");
        expected.insert(format!("msg_{}", m.message().id.to_hex()));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut passes = 0;
    loop {
        let events = store.pending_events(10).await.expect("pending");
        if events.is_empty() {
            break;
        }
        passes += 1;
        assert!(events.len() <= 10, "a pass takes at most its limit: {}", events.len());
        for e in &events {
            let key = if e.kind == HookEvent::ConversationCreated { e.kind.as_str().to_owned() } else { e.id.clone() };
            assert!(seen.insert(key), "{} taken twice", e.id);
        }
        let batch: Vec<(OutboxEvent, Vec<Delivery>)> = events.into_iter().map(|e| (e, Vec::new())).collect();
        store.fan_out_all(&batch).await.expect("fan out");
        assert!(passes <= 3, "26 events drain in three passes of 10");
    }
    assert_eq!(passes, 3);
    assert_eq!(seen, expected, "every event once");
}

/// When and from what a `message.created` body is built: at fan-out, from
/// the message as it is then, the same on every store
/// (`omnibiz_domain::events`). A message edited before its event goes out
/// is reported with its new content; one deleted before, as deleted and
/// without the content its sender took back.
pub(crate) async fn message_created_is_built_at_fan_out_from_the_message_as_it_is(store: Dyn) {
    let (o, c) = setup(&store).await;
    let conv = fixtures::conversation(&*store, &o, &c).await.expect("conversation");
    let from = c.id.to_hex();
    let send = |text: &'static str| {
        let store = Arc::clone(&store);
        let msg = new_message(conv.id, Side::Customer, &from, text);
        async move { store.append_message(msg).await.expect("append").expect("sent").into_message() }
    };
    let kept = send("where is my order?").await;
    let edited = send("my adress is 1 Main St").await;
    let deleted = send("my card number is 4111").await;
    let later = Utc::now() + Duration::seconds(1);
    store.edit_message(edited.id, conv.id, "my address is 1 Main St", later).await.expect("edit").expect("edited");
    store.delete_message(deleted.id, conv.id, later).await.expect("delete").expect("deleted");

    let pending = store.pending_events(100).await.expect("outbox");
    let created = |id| {
        let want = events::message_created_id(id);
        pending.iter().find(|e| e.id == want).unwrap_or_else(|| panic!("no message.created for {id}: {pending:?}"))
    };
    let listed = store.list_messages(&MessageQuery::latest(conv.id, 10)).await.expect("list");
    let as_now = |id| events::message_created_data(listed.iter().find(|m| m.id == id).expect("listed"));
    for m in [&kept, &edited, &deleted] {
        let e = created(m.id);
        assert_eq!(e.kind, HookEvent::MessageCreated);
        assert_eq!(e.conversation, conv.id);
        assert_eq!(e.data, as_now(m.id), "built from the message as it is at fan-out");
    }
    assert_eq!(created(kept.id).data["content"], "where is my order?");
    assert_eq!(created(edited.id).data["content"], "my address is 1 Main St");
    assert!(created(edited.id).data["editedAt"].is_string());
    let gone = &created(deleted.id).data;
    assert_eq!(gone["isDeleted"], true);
    assert_eq!(gone["content"], "", "a deleted message's content never goes out");
    assert!(!gone.to_string().contains("4111"), "{gone}");
}

/// Secrets are replaced in place (resealing) and listed for a full pass.
pub(crate) async fn endpoint_secrets_can_be_resealed(store: Dyn) {
    let now = Utc::now();
    let endpoint = |secret: &str| omnibiz_domain::webhook::Endpoint {
        secret: secret.into(),
        ..endpoint(UserId(bson::oid::ObjectId::new()), "https://example.com/hook", now)
    };
    let (a, b) = (endpoint("whsec_plain"), endpoint("sealed:v1:k1:AAAA"));
    store.insert_endpoint(&a).await.expect("insert");
    store.insert_endpoint(&b).await.expect("insert");
    let mut all = store.endpoint_secrets().await.expect("secrets");
    all.sort_by_key(|(id, _)| id.to_hex());
    let mut want = vec![(a.id, a.secret.clone()), (b.id, b.secret.clone())];
    want.sort_by_key(|(id, _)| id.to_hex());
    assert_eq!(all, want);
    assert!(store.set_endpoint_secret(a.id, "sealed:v1:k2:BBBB").await.expect("set"));
    assert!(!store.set_endpoint_secret(EndpointId::new(), "x").await.expect("set"), "no such endpoint");
    let got = store.get_endpoint(a.id).await.expect("get").expect("exists");
    assert_eq!(got.secret, "sealed:v1:k2:BBBB");
    assert_eq!((got.url, got.events), (a.url, a.events), "nothing else changed");
}

/// An outbox pass reads its businesses' endpoints and its recipients'
/// browsers in one call each: the same answer as one read per owner or
/// person, each list in its own order, nobody's mixed into another's.
pub(crate) async fn a_pass_reads_every_business_and_browser_at_once(store: Dyn) {
    let now = Utc::now();
    let (a, b, none) =
        (UserId(bson::oid::ObjectId::new()), UserId(bson::oid::ObjectId::new()), UserId(bson::oid::ObjectId::new()));
    for (owner, url) in [(a, "https://a.example/1"), (b, "https://b.example/1"), (a, "https://a.example/2")] {
        store.insert_endpoint(&endpoint(owner, url, now)).await.expect("insert");
    }
    let many = store.endpoints_of_many(&[a, b, none]).await.expect("endpoints");
    assert_eq!(many.len(), 2, "an owner without endpoints is absent: {many:?}");
    for owner in [a, b] {
        let one = store.list_endpoints(owner).await.expect("list");
        assert_eq!(many[&owner].iter().map(|e| e.id).collect::<Vec<_>>(), one.iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert!(store.endpoints_of_many(&[]).await.expect("none asked").is_empty());

    let (o, c) = setup(&store).await;
    let (owner, customer, nobody) = (Party::Owner(o.id), Party::Customer(c.id), Party::Customer(CustomerId::new()));
    for (party, url) in [
        (customer, "https://push.example/c1"),
        (owner, "https://push.example/o1"),
        (customer, "https://push.example/c2"),
    ] {
        store.save_subscription(&super::notifications::subscription(party, url)).await.expect("subscribe");
    }
    let many = store.subscriptions_of_many(&[owner, customer, nobody]).await.expect("browsers");
    assert_eq!(many.len(), 2, "someone without browsers is absent");
    for p in [owner, customer] {
        let one = store.subscriptions_of(p).await.expect("list");
        assert_eq!(many[&p].iter().map(|s| s.id).collect::<Vec<_>>(), one.iter().map(|s| s.id).collect::<Vec<_>>());
    }
    assert_eq!(many[&customer].len(), 2);
}

/// An enabled endpoint of `owner` for `message.created`.
fn endpoint(owner: UserId, url: &str, now: chrono::DateTime<Utc>) -> omnibiz_domain::webhook::Endpoint {
    omnibiz_domain::webhook::Endpoint {
        id: EndpointId::new(),
        owner,
        url: url.into(),
        secret: "whsec_x".into(),
        events: vec![HookEvent::MessageCreated],
        description: String::new(),
        enabled: true,
        disabled_reason: None,
        failure_streak: 0,
        created_at: now,
        updated_at: now,
    }
}
