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
        .list_conversations(&ConversationQuery {
            party: Party::Owner(o.id),
            customers: None,
            before: None,
            archived: None,
            assigned: Default::default(),
            limit: 50,
        })
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
    let msgs = store.list_messages(&MessageQuery::latest(conv.id, 10)).await.expect("list");
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
    let q = |before, customers| ConversationQuery {
        party: Party::Owner(o.id),
        customers,
        before,
        archived: None,
        assigned: Default::default(),
        limit: 2,
    };
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
            archived: None,
            assigned: Default::default(),
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

/// Archiving is each side's own: lists filter and count by it, the other
/// side is untouched, a message from the other side brings it back for its
/// recipient (a customer's also reopens the seed's `status: archived`), and
/// the owner's unarchive reopens that status too.
pub(crate) async fn archiving_is_per_side_and_a_new_message_brings_it_back(store: Dyn) {
    let (o, c) = setup(&store).await;
    let c2 = customer(o.id, "Second Customer");
    store.insert_customers(std::slice::from_ref(&c2)).await.expect("insert");
    let now = Utc::now();
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), now).await.expect("create");
    store.get_or_create_conversation(&Participants::of(&o, &c2), now).await.expect("create");
    let (owner, cust) = (Party::Owner(o.id), Party::Customer(c.id));
    let list = |party, archived| {
        let store = store.clone();
        async move {
            let q = ConversationQuery {
                party,
                customers: None,
                before: None,
                archived,
                assigned: Default::default(),
                limit: 50,
            };
            store.list_conversations(&q).await.expect("list").into_iter().map(|c| c.id).collect::<Vec<_>>()
        }
    };
    let got = store.set_archived(conv.id, Side::Owner, true, Utc::now()).await.expect("archive").expect("exists");
    assert!(got.archived_for(Side::Owner) && !got.archived_for(Side::Customer));
    assert_eq!(list(owner, Some(true)).await, vec![conv.id]);
    assert_eq!(list(owner, Some(false)).await.len(), 1);
    assert_eq!(list(owner, None).await.len(), 2);
    assert_eq!(list(cust, Some(false)).await, vec![conv.id], "the customer's view is untouched");
    assert_eq!(store.conversation_counts(owner).await.expect("counts"), ConversationCounts { active: 1, archived: 1 });
    assert_eq!(store.conversation_counts(cust).await.expect("counts"), ConversationCounts { active: 1, archived: 0 });

    // The owner's own message does not unarchive it for the owner; the customer's does.
    store.append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "bye")).await.expect("append");
    assert_eq!(list(owner, Some(true)).await, vec![conv.id]);
    store.append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "one more thing")).await.expect("append");
    assert!(list(owner, Some(true)).await.is_empty(), "the recipient gets it back");

    // The customer archives; the owner's message brings it back for them.
    store.set_archived(conv.id, Side::Customer, true, Utc::now()).await.expect("archive");
    assert_eq!(list(cust, Some(true)).await, vec![conv.id]);
    store.append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "answer")).await.expect("append");
    assert!(list(cust, Some(true)).await.is_empty());

    // The seed's status: archived counts as archived for the business; a
    // customer's message or the owner's unarchive reopens it.
    let patch = ConversationPatch { status: Some(ConversationStatus::Archived), ..Default::default() };
    store.update_conversation(conv.id, &patch, Utc::now()).await.expect("status");
    assert_eq!(list(owner, Some(true)).await, vec![conv.id]);
    assert_eq!(list(cust, Some(true)).await.len(), 0, "not for the customer");
    store.append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "hello?")).await.expect("append");
    let now = store.get_conversation(conv.id).await.expect("get").expect("conv");
    assert_eq!(now.status, ConversationStatus::Active);
    store.update_conversation(conv.id, &patch, Utc::now()).await.expect("status");
    let back = store.set_archived(conv.id, Side::Owner, false, Utc::now()).await.expect("unarchive").expect("conv");
    assert_eq!(back.status, ConversationStatus::Active);
    assert!(!back.archived_for(Side::Owner));
    assert!(store.set_archived(ConversationId::new(), Side::Owner, true, Utc::now()).await.expect("none").is_none());
}
