//! Messages: appends and their `seq`, retries, pages, edits and deletes, search.

use super::*;

pub(crate) async fn parallel_appends_get_distinct_increasing_seqs(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let n = 40;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        let m = new_message(conv.id, Side::Customer, &c.id.to_hex(), &format!("message {i}"));
        tasks.push(tokio::spawn(async move { store.append_message(m).await.map(|a| a.expect("taken")) }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.expect("join").expect("append") {
            Appended::Created(m) => seqs.push(m.seq),
            Appended::Existing(_) => panic!("no client id, so nothing can be a duplicate"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=n).collect::<Vec<i64>>(), "distinct and gap-free");
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.last_seq, n);
    assert_eq!(conv.unread.owner, n, "recipient's unread counts every message");
    assert_eq!(conv.unread.customer, 0, "the sender's own messages are not unread for them");
    let last = store.list_messages(&MessageQuery::latest(conv.id, 1)).await.expect("last");
    assert_eq!(last[0].seq, n);
    assert_eq!(conv.last_message.as_deref(), Some(last[0].content.as_str()), "lastMessage is the highest seq");
    assert_eq!(conv.last_message_seq, n);
}

pub(crate) async fn client_message_id_stores_once(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let mut m = new_message(conv.id, Side::Owner, &o.id.to_hex(), "hello");
    m.client_message_id = Some("client-1".into());
    m.attachments = vec![Attachment {
        id: None,
        url: "https://cdn.example/a.png".into(),
        name: "a.png".into(),
        mime_type: "image/png".into(),
        size: 42,
        thumbnail_url: None,
        // Carried through both stores as written.
        audio: Some(AudioInfo { duration_ms: 2500, waveform: vec![3, 100, 41] }),
    }];
    let first = store.append_message(m.clone()).await.expect("first").expect("taken");
    let Appended::Created(first) = first else { panic!("first send creates") };
    assert_eq!(first.attachments.len(), 1);
    let retry = store.append_message(m.clone()).await.expect("retry").expect("taken");
    assert_eq!(retry, Appended::Existing(first.clone()));

    // Concurrent retries of another id: still one message.
    m.client_message_id = Some("client-2".into());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (store, m) = (store.clone(), m.clone());
        tasks.push(tokio::spawn(async move { store.append_message(m).await.map(|a| a.expect("taken")) }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("join").expect("append").into_message().id);
    }
    assert_eq!(ids.len(), 1, "one stored message for one clientMessageId");
    let all = store.list_messages(&MessageQuery::latest(conv.id, 100)).await.expect("list");
    assert_eq!(all.len(), 2);
    let conv = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv.unread.customer, 2, "retries do not inflate unread");
}

pub(crate) async fn append_checks_the_sender_and_a_retry_leaves_no_trace(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let me = c.id.to_hex();
    let refused = |conversation, side, sender: String| {
        let store = store.clone();
        async move { store.append_message(new_message(conversation, side, &sender, "x")).await.expect("append") }
    };
    // A stranger, a participant claiming the other side, a conversation that does not exist.
    assert!(refused(conv.id, Side::Customer, CustomerId::new().to_hex()).await.is_none(), "a stranger");
    assert!(refused(conv.id, Side::Owner, me.clone()).await.is_none(), "the customer posing as the owner");
    assert!(refused(ConversationId::new(), Side::Customer, me.clone()).await.is_none(), "no such conversation");
    let block = |status| ConversationPatch { status: Some(status), ..Default::default() };
    store.update_conversation(conv.id, &block(ConversationStatus::Blocked), Utc::now()).await.expect("block");
    assert!(refused(conv.id, Side::Customer, me.clone()).await.is_none(), "a blocked conversation");
    assert!(refused(conv.id, Side::Owner, o.id.to_hex()).await.is_none(), "blocked for both sides");
    store.update_conversation(conv.id, &block(ConversationStatus::Active), Utc::now()).await.expect("unblock");
    let untouched = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(
        (untouched.last_seq, untouched.unread.owner, untouched.last_message),
        (0, 0, None),
        "refusals change nothing"
    );

    // A retry after another message: the other stays the last one, no seq is used.
    let append = |m: NewMessage| {
        let store = store.clone();
        async move { store.append_message(m).await.expect("append").expect("taken") }
    };
    let mut first = new_message(conv.id, Side::Customer, &me, "first");
    first.client_message_id = Some("retry-1".into());
    assert_eq!(append(first.clone()).await.message().seq, 1);
    assert_eq!(append(new_message(conv.id, Side::Customer, &me, "second")).await.message().seq, 2);
    let before = store.get_conversation(conv.id).await.expect("get").expect("exists");
    let retry = append(first.clone()).await;
    assert!(matches!(&retry, Appended::Existing(m) if m.seq == 1 && m.content == "first"), "{retry:?}");
    let after = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(after.last_seq, 2, "the retry used no seq");
    assert_eq!(after.last_message.as_deref(), Some("second"), "the preview is still the newest message");
    assert_eq!(after.last_message_time, before.last_message_time);
    assert_eq!(after.activity_time(), before.activity_time(), "a retry does not move the conversation up");
    assert_eq!(after.unread.owner, 2, "nor count as unread");
    // A retry right after its own send; the next message follows without a gap.
    let mut third = new_message(conv.id, Side::Customer, &me, "third");
    third.client_message_id = Some("retry-2".into());
    assert_eq!(append(third.clone()).await.message().seq, 3);
    assert!(matches!(append(third).await, Appended::Existing(m) if m.seq == 3));
    assert_eq!(append(new_message(conv.id, Side::Customer, &me, "fourth")).await.message().seq, 4, "no gap");
    let seqs: Vec<i64> =
        store.list_messages(&MessageQuery::latest(conv.id, 10)).await.expect("list").iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let end = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!((end.last_seq, end.unread.owner, end.last_message.as_deref()), (4, 4, Some("fourth")));
}

/// New messages and retries of stored ones at the same moment (MongoDB then
/// writes them in shared `insertMany` batches): each new one is stored with
/// a seq of its own, each retry gets the stored message, and a refused
/// document does not take the others of its batch down with it.
pub(crate) async fn new_messages_and_retries_together_each_get_their_own_outcome(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let me = c.id.to_hex();
    let mut stored = Vec::new();
    for i in 0..4 {
        let mut m = new_message(conv.id, Side::Customer, &me, &format!("stored {i}"));
        m.client_message_id = Some(format!("stored-{i}"));
        store.append_message(m.clone()).await.expect("append").expect("taken");
        stored.push(m);
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let m = if i % 4 == 0 {
            stored[(i / 4) % stored.len()].clone()
        } else {
            let mut m = new_message(conv.id, Side::Customer, &me, &format!("new {i}"));
            m.client_message_id = Some(format!("new-{i}"));
            m
        };
        let store = store.clone();
        tasks.push(tokio::spawn(async move { store.append_message(m).await.expect("append").expect("taken") }));
    }
    let (mut created, mut existing) = (Vec::new(), 0);
    for t in tasks {
        match t.await.expect("join") {
            Appended::Created(m) => created.push(m.seq),
            Appended::Existing(m) => {
                assert!(m.content.starts_with("stored "), "a retry gets the stored message: {m:?}");
                existing += 1;
            }
        }
    }
    created.sort_unstable();
    created.dedup();
    assert_eq!(existing, 10, "every retry found its message");
    assert_eq!(created.len(), 30, "every new message stored, each with a seq of its own");
    assert!(created[0] > 4, "after the stored ones: {created:?}");
    let all = store.list_messages(&MessageQuery::latest(conv.id, 100)).await.expect("list");
    assert_eq!(all.len(), 34, "nothing stored twice, nothing lost");
    let end = store.get_conversation(conv.id).await.expect("get").expect("exists");
    // A retry gives its seq back only when no other send took one since: under
    // this much concurrency some are skipped (the gateways' gap wait covers it).
    assert!(end.last_seq >= 34 && end.last_seq <= 44, "{}", end.last_seq);
    assert_eq!(end.unread.owner, 34, "retries add no unread");
}

pub(crate) async fn message_pages_by_seq(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    for i in 1..=10 {
        store
            .append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), &format!("m{i}")))
            .await
            .expect("append")
            .expect("taken");
    }
    let q =
        |before, after, limit| MessageQuery { conversation_id: conv.id, before, after, limit, include_private: true };
    let seqs = |v: Vec<omnibiz_domain::Message>| v.into_iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.list_messages(&q(None, None, 3)).await.expect("latest")), vec![8, 9, 10]);
    assert_eq!(seqs(store.list_messages(&q(Some(8), None, 3)).await.expect("before")), vec![5, 6, 7]);
    assert_eq!(seqs(store.list_messages(&q(None, Some(7), 100)).await.expect("after")), vec![8, 9, 10]);
    assert_eq!(seqs(store.list_messages(&q(None, Some(2), 2)).await.expect("after")), vec![3, 4]);
    assert_eq!(seqs(store.list_messages(&q(Some(6), Some(3), 10)).await.expect("between")), vec![4, 5]);
    assert!(store.list_messages(&q(None, Some(10), 10)).await.expect("none").is_empty());
}

pub(crate) async fn edit_and_delete_keep_history_honest(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let first = store
        .append_message(new_message(conv.id, Side::Customer, &me, "one"))
        .await
        .expect("a")
        .expect("taken")
        .into_message();
    let last = store
        .append_message(new_message(conv.id, Side::Customer, &me, "two"))
        .await
        .expect("b")
        .expect("taken")
        .into_message();
    let at = Utc::now();
    let edited =
        store.edit_message(first.id, first.conversation_id, "one, edited", at).await.expect("edit").expect("exists");
    assert_eq!(edited.content, "one, edited");
    assert!(edited.edited_at.is_some());
    let reread = store.get_message(first.id).await.expect("get").expect("exists");
    assert_eq!((reread.content.as_str(), reread.edited_at.is_some()), ("one, edited", true));
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some("two"), "editing an older message leaves the preview");
    store.edit_message(last.id, last.conversation_id, "two, edited", at).await.expect("edit").expect("exists");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some("two, edited"));
    assert_eq!(conv_now.unread.owner, 2);

    let deleted =
        store.delete_message(last.id, last.conversation_id, Utc::now()).await.expect("delete").expect("existed");
    assert!(deleted.deleted);
    assert_eq!(deleted.content, "");
    assert!(store.get_message(last.id).await.expect("get").is_none(), "a deleted message is not served by id");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.last_message.as_deref(), Some(omnibiz_store::DELETED_PREVIEW));
    assert_eq!(conv_now.unread.owner, 1, "a deleted unread message stops counting");
    let page = store
        .list_messages(&MessageQuery {
            conversation_id: conv.id,
            before: None,
            after: Some(0),
            limit: 10,
            include_private: true,
        })
        .await
        .expect("list");
    assert_eq!(page.len(), 2, "history keeps its place");
    assert!(page[1].deleted && page[1].content.is_empty() && page[1].attachments.is_empty());
    assert!(!page[0].deleted);
    assert!(store.delete_message(last.id, last.conversation_id, Utc::now()).await.expect("delete").is_none(), "once");
    assert!(
        store.edit_message(last.id, last.conversation_id, "back", Utc::now()).await.expect("edit").is_none(),
        "no editing a deleted one"
    );
    // Read, then delete: the unread count does not go below what is unread.
    store.mark_read(conv.id, Side::Owner, first.seq).await.expect("read");
    store.delete_message(first.id, first.conversation_id, Utc::now()).await.expect("delete").expect("existed");
    let conv_now = store.get_conversation(conv.id).await.expect("get").expect("exists");
    assert_eq!(conv_now.unread.owner, 0);
}

pub(crate) async fn search_finds_candidates_in_the_partys_conversations(store: Dyn) {
    use omnibiz_domain::search::{SearchQuery, is_match};
    let (o, c) = setup(&store).await;
    let c2 = customer(o.id, "Second Customer");
    store.insert_customers(std::slice::from_ref(&c2)).await.expect("insert");
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("conv");
    let (conv2, _) = store.get_or_create_conversation(&Participants::of(&o, &c2), Utc::now()).await.expect("conv");
    let me = c.id.to_hex();
    let me2 = c2.id.to_hex();
    for (cv, from, text) in [
        (conv.id, &me, "Shipping to Mombasa"),
        (conv.id, &me, "Relationship advice"),
        (conv2.id, &me2, "shipped yesterday"),
    ] {
        store.append_message(new_message(cv, Side::Customer, from, text)).await.expect("append").expect("taken");
    }
    let gone = store
        .append_message(new_message(conv.id, Side::Customer, &me, "ship it"))
        .await
        .expect("a")
        .expect("taken")
        .into_message();
    store.delete_message(gone.id, gone.conversation_id, Utc::now()).await.expect("delete");
    let q = SearchQuery::parse("ship").expect("query");
    let found = |party| {
        let (store, q) = (Arc::clone(&store), q.clone());
        async move {
            let mut v: Vec<String> = store
                .search_messages(party, &q, None, 50)
                .await
                .expect("search")
                .into_iter()
                .filter(|m| is_match(&m.content, &q))
                .map(|m| m.content)
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(found(Party::Owner(o.id)).await, vec!["Shipping to Mombasa", "shipped yesterday"]);
    assert_eq!(found(Party::Customer(c.id)).await, vec!["Shipping to Mombasa"]);
    assert_eq!(found(Party::Customer(c2.id)).await, vec!["shipped yesterday"]);
    assert!(found(Party::Owner(UserId::new())).await.is_empty());
    // Edited content is what is found.
    let all = store.search_messages(Party::Owner(o.id), &q, None, 50).await.expect("search");
    let shipping = all.iter().find(|m| m.content == "Shipping to Mombasa").expect("found");
    store.edit_message(shipping.id, shipping.conversation_id, "Delivery to Nairobi", Utc::now()).await.expect("edit");
    assert_eq!(found(Party::Customer(c.id)).await, Vec::<String>::new());
    let q2 = SearchQuery::parse("nairobi").expect("query");
    assert_eq!(store.search_messages(Party::Customer(c.id), &q2, None, 50).await.expect("search").len(), 1);
}

/// Reactions: one of each emoji per person, each change recorded once as a
/// `message.reaction` event, read back with the message (pages and by id),
/// gone with a deleted message; neither the preview nor the unread counts move.
pub(crate) async fn reactions_toggle_once_per_person_and_record_their_events(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let m = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "where is my order?"))
        .await
        .expect("append")
        .expect("taken")
        .into_message();
    for e in store.pending_events(100).await.expect("pending") {
        store.fan_out(&e, &[]).await.expect("drain");
    }
    let before = store.get_conversation(conv.id).await.expect("get").expect("conv");
    let (owner, customer) = (Party::Owner(o.id), Party::Customer(c.id));
    let react = |by, emoji: &'static str, add| {
        let store = store.clone();
        async move { store.react(m.id, conv.id, by, emoji, add, Utc::now()).await.expect("react") }
    };
    let (_, changed) = react(owner, "👍", true).await.expect("message");
    assert!(changed);
    let (_, changed) = react(owner, "👍", true).await.expect("message");
    assert!(!changed, "one of each emoji per person");
    react(customer, "👍", true).await.expect("message");
    let (now, _) = react(customer, "🎉", true).await.expect("message");
    let got: Vec<(&str, Party)> = now.reactions.iter().map(|r| (r.emoji.as_str(), r.by)).collect();
    assert_eq!(got, vec![("👍", owner), ("👍", customer), ("🎉", customer)]);
    let (now, changed) = react(owner, "👍", false).await.expect("message");
    assert!(changed);
    assert_eq!(now.reactions.len(), 2);
    assert!(!react(owner, "👍", false).await.expect("message").1, "nothing to take back");

    let listed = store.list_messages(&MessageQuery::latest(conv.id, 10)).await.expect("list");
    assert_eq!(listed[0].reactions, now.reactions, "pages carry them");
    assert_eq!(store.get_message(m.id).await.expect("get").expect("message").reactions, now.reactions);
    let events = store.pending_events(100).await.expect("pending");
    let reactions: Vec<&OutboxEvent> = events.iter().filter(|e| e.kind == HookEvent::MessageReaction).collect();
    assert_eq!(reactions.len(), 4, "one event per change, none for no-ops: {events:#?}");
    let actions: Vec<&str> = reactions.iter().filter_map(|e| e.data["action"].as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "added").count(), 3);
    assert!(reactions.iter().all(|e| e.data["messageId"] == m.id.to_hex().as_str()));
    for e in &events {
        store.fan_out(e, &[]).await.expect("fan out");
    }
    assert!(store.pending_events(100).await.expect("pending").is_empty(), "reaction events clear like edits");
    let after = store.get_conversation(conv.id).await.expect("get").expect("conv");
    assert_eq!(
        (after.last_message, after.unread, after.last_seq),
        (before.last_message, before.unread, before.last_seq),
        "a reaction is not a message"
    );

    store.delete_message(m.id, conv.id, Utc::now()).await.expect("delete").expect("deleted");
    assert!(react(owner, "👍", true).await.is_none(), "no reacting to a deleted message");
    let listed = store.list_messages(&MessageQuery::latest(conv.id, 10)).await.expect("list");
    assert!(listed[0].reactions.is_empty(), "a deleted message keeps none");
}
