//! Push subscriptions, notification preferences, and notification
//! deliveries riding on the webhook outbox.

use omnibiz_domain::SubscriptionId;
use omnibiz_domain::notification::{Preferences, PreviewMode, PushSubscription, QuietHours};

use super::*;

pub(crate) fn subscription(party: Party, endpoint: &str) -> PushSubscription {
    PushSubscription {
        id: SubscriptionId::new(),
        party,
        endpoint: endpoint.into(),
        p256dh: "BKey".into(),
        auth: "auth".into(),
        user_agent: "Test/1".into(),
        created_at: Utc::now(),
    }
}

/// One browser belongs to one person: saving it again keeps its id for the
/// same person and moves it to another; removal is the owner's only.
pub(crate) async fn push_subscriptions_belong_to_one_person(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (me, other) = (Party::Customer(c.id), Party::Owner(o.id));
    let first = store.save_subscription(&subscription(me, "https://push.example/a")).await.expect("save");
    let second = store.save_subscription(&subscription(me, "https://push.example/b")).await.expect("save");
    let mut again = subscription(me, "https://push.example/a");
    again.p256dh = "BNew".into();
    let again = store.save_subscription(&again).await.expect("save again");
    assert_eq!(again.id, first.id, "same person, same browser: same subscription");
    let mine = store.subscriptions_of(me).await.expect("list");
    assert_eq!(mine.iter().map(|s| s.id).collect::<Vec<_>>(), vec![first.id, second.id]);
    assert_eq!(mine[0].p256dh, "BNew", "the new keys are kept");
    // The browser signs in as someone else: it is theirs now.
    let moved = store.save_subscription(&subscription(other, "https://push.example/a")).await.expect("move");
    assert_ne!(moved.id, first.id);
    assert_eq!(store.subscriptions_of(me).await.expect("list").len(), 1);
    assert_eq!(store.subscriptions_of(other).await.expect("list")[0].endpoint, "https://push.example/a");
    // Removing: not someone else's; one's own, once.
    assert!(!store.delete_subscription(second.id, Some(other)).await.expect("delete"));
    assert!(store.delete_subscription(second.id, Some(me)).await.expect("delete"));
    assert!(!store.delete_subscription(second.id, Some(me)).await.expect("delete twice"));
    assert!(store.get_subscription(second.id).await.expect("get").is_none());
    assert!(store.delete_subscription(moved.id, None).await.expect("delete any"));
}

pub(crate) async fn preferences_round_trip_and_default(store: Dyn) {
    let (o, c) = setup(&store).await;
    let me = Party::Owner(o.id);
    assert_eq!(store.preferences(me).await.expect("read"), Preferences::default());
    let p = Preferences {
        push: false,
        email: true,
        preview: PreviewMode::Short,
        muted: vec![ConversationId::new()],
        email_delay_secs: Some(120),
        quiet_hours: Some(QuietHours { start_minute: 1320, end_minute: 420, utc_offset_minutes: -300 }),
    };
    store.set_preferences(me, &p).await.expect("save");
    assert_eq!(store.preferences(me).await.expect("read"), p);
    assert_eq!(store.preferences(Party::Customer(c.id)).await.expect("read"), Preferences::default(), "per person");
    let p2 = Preferences { push: true, ..p.clone() };
    store.set_preferences(me, &p2).await.expect("replace");
    assert_eq!(store.preferences(me).await.expect("read"), p2);
}

/// A push or email delivery keeps its target through fan-out, claims and
/// reads, and never shows among a webhook endpoint's deliveries.
pub(crate) async fn notification_deliveries_keep_their_target(store: Dyn) {
    let (o, c) = setup(&store).await;
    let now = Utc::now();
    let endpoint = EndpointId::new();
    let sub = SubscriptionId::new();
    let event = OutboxEvent {
        id: "msg_targets".into(),
        kind: HookEvent::MessageCreated,
        conversation: ConversationId::new(),
        at: now,
        data: serde_json::json!({}),
    };
    let delivery = |id: &str, target| Delivery {
        unread_check: Some(omnibiz_domain::webhook::UnreadCheck { recipient_owner: false, seq: 1, member: None }),
        ..pending_delivery(id.into(), target, o.id, (&event.id, HookEvent::MessageCreated), event.conversation, now)
    };
    let targets = [
        ("hook", Target::Webhook(endpoint)),
        ("push", Target::Push(sub)),
        ("mail-c", Target::Email(Party::Customer(c.id))),
        ("mail-o", Target::Email(Party::Owner(o.id))),
    ];
    let all: Vec<Delivery> = targets.iter().map(|(id, t)| delivery(id, *t)).collect();
    store.fan_out(&event, &all).await.expect("fan out");
    for (id, t) in targets {
        assert_eq!(store.get_delivery(id).await.expect("get").expect("stored").target, t);
    }
    let claimed = store
        .claim_deliveries("h", Utc::now(), Utc::now() + Duration::seconds(30), 10, &OwnerShare::unlimited())
        .await
        .expect("claim");
    let mut got: Vec<Target> = claimed.iter().map(|d| d.target).collect();
    got.sort_by_key(|t| t.channel());
    let mut want: Vec<Target> = targets.iter().map(|(_, t)| *t).collect();
    want.sort_by_key(|t| t.channel());
    assert_eq!(got, want);
    let listed = store.list_deliveries(endpoint, None, 10).await.expect("list");
    assert_eq!(listed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), vec!["hook"]);
}
