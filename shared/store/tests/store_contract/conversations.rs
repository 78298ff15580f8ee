//! Conversations: create-or-get, lists, metadata, read positions.

use super::*;

pub(crate) async fn create_or_get_is_idempotent_under_concurrency(store: Dyn) {
    let (o, c) = setup(&store).await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        let who = Participants::of(&o, &c);
        tasks.push(tokio::spawn(async move { store.get_or_create_conversation(&who, Utc::now()).await }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (conv, was_created) = t.await.expect("join").expect("create-or-get");
        ids.insert(conv.id);
        created += usize::from(was_created);
    }
    assert_eq!(ids.len(), 1, "20 parallel creates give one conversation");
    assert_eq!(created, 1, "exactly one call reports creating it");
    let all = store
        .list_conversations(&ConversationQuery { party: Party::Owner(o.id), customers: None, before: None, limit: 50 })
        .await
        .expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, ConversationStatus::Active);
    assert_eq!(all[0].last_seq, 0);
}

pub(crate) async fn mark_read_resets_unread_and_never_moves_back(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    for i in 1..=5 {
        store
            .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("c{i}")))
            .await
            .expect("a")
            .expect("taken");
    }
    store
        .append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "o1"))
        .await
        .expect("append")
        .expect("taken");
    let r = store.mark_read(conv.id, Side::Owner, 3).await.expect("read");
    assert_eq!((r.read_seq, r.unread), (3, 2));
    let r = store.mark_read(conv.id, Side::Owner, 1).await.expect("read");
    assert_eq!((r.read_seq, r.unread), (3, 2), "never backwards");
    let msgs = store
        .list_messages(&MessageQuery { conversation_id: conv.id, before: None, after: None, limit: 10 })
        .await
        .expect("list");
    let status: Vec<_> = msgs.iter().map(|m| (m.seq, m.status)).collect();
    assert_eq!(status[..3], [(1, MessageStatus::Read), (2, MessageStatus::Read), (3, MessageStatus::Read)]);
    assert_eq!(status[3].1, MessageStatus::Sent);
    let r = store.mark_read(conv.id, Side::Owner, 6).await.expect("read all");
    assert_eq!((r.read_seq, r.unread), (6, 0));
    let own = msgs.iter().find(|m| m.sender_side == Side::Owner).expect("owner message");
    let own = store.get_message(own.id).await.expect("get").expect("exists");
    assert_eq!(own.status, MessageStatus::Sent, "the reader's own messages are untouched");
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.unread.owner, 0);
    assert_eq!(conv.unread.customer, 1);
    assert!(store.mark_delivered(own.id).await.expect("deliver"));
    assert!(!store.mark_delivered(own.id).await.expect("again"), "only sent → delivered");
}

pub(crate) async fn conversation_list_orders_by_activity_with_cursor(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("user");
    let cs: Vec<Customer> = (0..5).map(|i| customer(o.id, &format!("Cust {i}"))).collect();
    store.insert_customers(&cs).await.expect("customers");
    let t0 = Utc::now() - Duration::hours(1);
    let mut convs = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let (conv, _) = store
            .get_or_create_conversation(&Participants::of(&o, c), t0 + Duration::seconds(i as i64))
            .await
            .expect("c");
        convs.push(conv);
    }
    // A message makes the oldest conversation the most recent.
    store
        .append_message(new_message(convs[0].id, Side::Customer, &cs[0].id.to_hex(), "ping"))
        .await
        .expect("append")
        .expect("taken");
    let q = |before, customers| ConversationQuery { party: Party::Owner(o.id), customers, before, limit: 2 };
    let mut order = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_conversations(&q(before, None)).await.expect("page");
        let Some(last) = page.last() else { break };
        before = Some(omnibiz_store::ActivityCursor { at: last.activity_time(), id: last.id });
        order.extend(page.iter().map(|c| c.id));
    }
    let expected: Vec<_> = [0, 4, 3, 2, 1].iter().map(|&i| convs[i].id).collect();
    assert_eq!(order, expected);
    let only = store.list_conversations(&q(None, Some(vec![cs[2].id, cs[3].id]))).await.expect("filtered");
    assert_eq!(only.len(), 2);
    assert!(store.list_conversations(&q(None, Some(vec![]))).await.expect("empty filter").is_empty());
    let mine = store
        .list_conversations(&ConversationQuery {
            party: Party::Customer(cs[1].id),
            customers: None,
            before: None,
            limit: 9,
        })
        .await
        .expect("customer list");
    assert_eq!(mine.len(), 1);
    let with = store.conversations_with(o.id, &[cs[0].id, cs[1].id, CustomerId::new()]).await.expect("with");
    assert_eq!(with.len(), 2);
}

pub(crate) async fn conversation_patch(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let patch = ConversationPatch {
        status: Some(ConversationStatus::Archived),
        tags: Some(vec!["vip".into(), "refund".into()]),
        priority: Some(Priority::Urgent),
    };
    let got = store.update_conversation(conv.id, &patch, Utc::now()).await.expect("update").expect("exists");
    assert_eq!(got.status, ConversationStatus::Archived);
    assert_eq!(got.tags, vec!["vip".to_string(), "refund".to_string()]);
    assert_eq!(got.priority, Priority::Urgent);
    let got = store
        .update_conversation(
            conv.id,
            &ConversationPatch { priority: Some(Priority::Low), ..Default::default() },
            Utc::now(),
        )
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(got.status, ConversationStatus::Archived, "untouched fields stay");
    assert_eq!(got.priority, Priority::Low);
    let missing = omnibiz_domain::ConversationId::new();
    assert!(store.update_conversation(missing, &patch, Utc::now()).await.expect("update").is_none());
}
