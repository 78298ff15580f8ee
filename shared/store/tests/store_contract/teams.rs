//! Teams: membership, assignment, and internal notes that never leave the
//! business side.

use omnibiz_domain::search::SearchQuery;
use omnibiz_domain::{TeamMember, TeamRole, TeamSettings};
use omnibiz_store::{Assigned, AssignmentCounts, Joined, TeamReadFrom};

use super::*;

/// The ids of `party`'s conversations (by assignee), sorted.
async fn listed(store: &Dyn, party: Party, assigned: Assigned) -> Vec<ConversationId> {
    let q = ConversationQuery { party, customers: None, before: None, archived: None, assigned, limit: 50 };
    sorted(store.list_conversations(&q).await.expect("list").into_iter().map(|c| c.id).collect())
}

fn sorted(mut ids: Vec<ConversationId>) -> Vec<ConversationId> {
    ids.sort();
    ids
}

fn member(business: UserId, user: UserId, role: TeamRole) -> TeamMember {
    TeamMember { business, user, role, added_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 3) }
}

/// A user is in one team at most; adding again changes the role; removal
/// is by the business that has them.
pub(crate) async fn a_user_is_in_one_team_at_most(store: Dyn) {
    let (a, b) = (UserId::new(), UserId::new());
    let (ana, ben) = (UserId::new(), UserId::new());
    assert_eq!(store.add_team_member(&member(a, ana, TeamRole::Agent)).await.expect("add"), Joined::Added);
    assert_eq!(store.add_team_member(&member(a, ben, TeamRole::Agent)).await.expect("add"), Joined::Added);
    assert_eq!(store.add_team_member(&member(a, ana, TeamRole::Admin)).await.expect("again"), Joined::Updated);
    assert_eq!(store.add_team_member(&member(b, ana, TeamRole::Agent)).await.expect("other"), Joined::OtherTeam);
    let team = store.team_members(a).await.expect("list");
    assert_eq!(
        team.iter().map(|m| (m.user, m.role)).collect::<Vec<_>>(),
        vec![(ana, TeamRole::Admin), (ben, TeamRole::Agent)]
    );
    assert!(store.team_members(b).await.expect("list").is_empty(), "the other team stayed empty");
    assert_eq!(store.membership(ana).await.expect("read").map(|m| (m.business, m.role)), Some((a, TeamRole::Admin)));
    assert!(!store.remove_team_member(b, ana).await.expect("remove"), "not b's member");
    assert!(store.remove_team_member(a, ana).await.expect("remove"));
    assert!(!store.remove_team_member(a, ana).await.expect("remove"), "once");
    assert_eq!(store.membership(ana).await.expect("read"), None);
    assert_eq!(store.add_team_member(&member(b, ana, TeamRole::Agent)).await.expect("free"), Joined::Added);

    assert_eq!(store.team_settings(a).await.expect("read"), TeamSettings::default());
    let rules = TeamSettings { agents_see_all: true, auto_assign: true, max_open_per_agent: 7 };
    store.set_team_settings(a, rules).await.expect("save");
    assert_eq!(store.team_settings(a).await.expect("read"), rules);
    assert!(!store.team_settings(b).await.expect("read").agents_see_all, "per business");
}

/// Lists filter by assignee; the counts leave archived ones out.
pub(crate) async fn conversations_filter_and_count_by_assignee(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("owner");
    let cs: Vec<Customer> = (0..4).map(|i| customer(o.id, &format!("Customer {i}"))).collect();
    store.insert_customers(&cs).await.expect("customers");
    let mut convs = Vec::new();
    for c in &cs {
        convs.push(store.get_or_create_conversation(&Participants::of(&o, c), Utc::now()).await.expect("create").0);
    }
    let (ana, ben) = (UserId::new(), UserId::new());
    let now = Utc::now();
    let a0 = store.set_assignee(convs[0].id, Some(ana), now).await.expect("assign").expect("exists");
    assert_eq!(a0.assignee, Some(ana));
    store.set_assignee(convs[1].id, Some(ben), now).await.expect("assign");
    store.set_assignee(convs[2].id, Some(ana), now).await.expect("assign");
    store.set_assignee(convs[2].id, None, now).await.expect("unassign");
    assert_eq!(store.get_conversation(convs[2].id).await.expect("read").expect("exists").assignee, None);
    assert!(store.set_assignee(ConversationId::new(), Some(ana), now).await.expect("assign").is_none());
    // Claiming takes an unassigned conversation only.
    assert!(store.claim_unassigned(convs[1].id, ana, now).await.expect("claim").is_none(), "Ben's");
    let claimed = store.claim_unassigned(convs[3].id, ana, now).await.expect("claim").expect("unassigned");
    assert_eq!(claimed.assignee, Some(ana));
    store.set_assignee(convs[3].id, None, now).await.expect("unassign again");

    let list = |assigned| listed(&store, Party::Owner(o.id), assigned);
    assert_eq!(list(Assigned::To(ana)).await, vec![convs[0].id]);
    assert_eq!(list(Assigned::Unassigned).await, sorted(vec![convs[2].id, convs[3].id]));
    assert_eq!(list(Assigned::ToOrNobody(ana)).await, sorted(vec![convs[0].id, convs[2].id, convs[3].id]));
    assert_eq!(list(Assigned::Any).await.len(), 4);
    let counts = store.assignment_counts(o.id, ana).await.expect("count");
    assert_eq!(counts, AssignmentCounts { all: 4, mine: 1, unassigned: 2 });
    store.set_archived(convs[3].id, Side::Owner, true, now).await.expect("archive");
    let counts = store.assignment_counts(o.id, ana).await.expect("count");
    assert_eq!(counts, AssignmentCounts { all: 3, mine: 1, unassigned: 1 }, "archived ones are not counted");
}

/// A note takes a seq and stays on the business side: no preview, no
/// unread, not in the customer's reads or searches; the preview still
/// follows the last public message through edits and deletes.
pub(crate) async fn internal_notes_stay_on_the_business_side(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let agent = UserId::new();
    let public = store
        .append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "Your parcel left today"))
        .await
        .expect("append")
        .expect("taken")
        .into_message();
    let mut note = fixtures::note(conv.id, o.id, agent, "Customer asked twice: refund parcel");
    note.client_message_id = Some("note-1".into());
    let stored = store.append_message(note.clone()).await.expect("append").expect("a member of the business");
    let Appended::Created(n) = stored else { panic!("a new note") };
    assert!(n.private && n.team_role == Some(TeamRole::Agent) && n.sender_id == agent.to_hex() && n.seq == 2);
    // A retry of the note changes nothing.
    assert!(matches!(store.append_message(note).await.expect("retry"), Some(Appended::Existing(_))));
    let after = store.get_conversation(conv.id).await.expect("read").expect("exists");
    assert_eq!(after.last_seq, 2);
    assert_eq!(after.last_message.as_deref(), Some("Your parcel left today"));
    assert_eq!(after.last_message_seq, 1);
    assert_eq!(after.unread.customer, 1, "only the public message is unread");
    assert_eq!(after.activity_time(), conv.activity_time().max(public.created_at));

    let page = |include_private| MessageQuery {
        conversation_id: conv.id,
        before: None,
        after: None,
        limit: 10,
        include_private,
    };
    let seqs = |ms: Vec<omnibiz_domain::Message>| ms.iter().map(|m| m.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.list_messages(&page(false)).await.expect("list")), vec![1]);
    assert_eq!(seqs(store.list_messages(&page(true)).await.expect("list")), vec![1, 2]);
    let after_one = MessageQuery { after: Some(1), ..page(false) };
    assert!(store.list_messages(&after_one).await.expect("list").is_empty(), "recovery skips it too");

    let q = SearchQuery::parse("refund").expect("query");
    assert!(store.search_messages(Party::Customer(c.id), &q, None, 10).await.expect("search").is_empty());
    assert_eq!(store.search_messages(Party::Owner(o.id), &q, None, 10).await.expect("search").len(), 1);

    // The preview follows the public message though a note came after it.
    store.edit_message(public.id, conv.id, "Your parcel left this morning", Utc::now()).await.expect("edit");
    let c1 = store.get_conversation(conv.id).await.expect("read").expect("exists");
    assert_eq!(c1.last_message.as_deref(), Some("Your parcel left this morning"));
    store.delete_message(public.id, conv.id, Utc::now()).await.expect("delete");
    let c2 = store.get_conversation(conv.id).await.expect("read").expect("exists");
    assert_eq!(c2.last_message.as_deref(), Some(omnibiz_store::DELETED_PREVIEW));
    // The next public message takes the preview and the next seq.
    let next = store
        .append_message(new_message(conv.id, Side::Customer, &c.id.to_hex(), "thanks"))
        .await
        .expect("append")
        .expect("taken")
        .into_message();
    assert_eq!(next.seq, 3);
    let c3 = store.get_conversation(conv.id).await.expect("read").expect("exists");
    assert_eq!((c3.last_message.as_deref(), c3.last_message_seq), (Some("thanks"), 3));

    // A member acting for another business is no participant.
    let stranger = fixtures::note(conv.id, UserId::new(), agent, "not ours");
    assert!(store.append_message(stranger).await.expect("append").is_none());
}

/// A group: its customers take part, each with their own read position
/// and unread count; a removed one is out; groups never clash with the
/// one-conversation-per-customer rule.
pub(crate) async fn groups_keep_per_member_state(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("owner");
    let cs: Vec<Customer> = (0..3).map(|i| customer(o.id, &format!("Member {i}"))).collect();
    store.insert_customers(&cs).await.expect("customers");
    let (c0, c1, c2) = (cs[0].id, cs[1].id, cs[2].id);
    let (direct, _) =
        store.get_or_create_conversation(&Participants::of(&o, &cs[0]), Utc::now()).await.expect("direct");
    let g = omnibiz_domain::Conversation::new_group(o.id, "Family order".into(), vec![c0, c1], Utc::now());
    store.create_group(&g).await.expect("create");
    let other = omnibiz_domain::Conversation::new_group(o.id, "Second".into(), vec![c1], Utc::now());
    store.create_group(&other).await.expect("a second group of the same business");
    let read = store.get_conversation(g.id).await.expect("read").expect("exists");
    assert_eq!(
        read.group.as_ref().map(|g| (g.title.as_str(), g.members.clone())),
        Some(("Family order", vec![c0, c1]))
    );
    assert!(omnibiz_domain::Conversation::is_group_marker(read.id, read.customer_id));

    let listed = |party| listed(&store, party, Assigned::Any);
    assert_eq!(listed(Party::Customer(c0)).await, sorted(vec![direct.id, g.id]));
    assert_eq!(listed(Party::Customer(c1)).await, sorted(vec![g.id, other.id]));
    assert!(listed(Party::Customer(c2)).await.is_empty());
    assert_eq!(listed(Party::Owner(o.id)).await.len(), 3);
    assert_eq!(store.conversation_counts(Party::Customer(c0)).await.expect("count").active, 2);

    let say = |who: Side, sender: String, text: &'static str| {
        let store = store.clone();
        async move { store.append_message(new_message(g.id, who, &sender, text)).await.expect("append") }
    };
    assert!(say(Side::Customer, c0.to_hex(), "Is the cake ready?").await.is_some(), "a member writes");
    assert!(say(Side::Customer, c2.to_hex(), "let me in").await.is_none(), "not a member");
    assert!(say(Side::Owner, o.id.to_hex(), "Ready at five").await.is_some());

    let none_read = store.mark_member_read(g.id, c1, 0, Utc::now()).await.expect("unread");
    assert_eq!((none_read.read_seq, none_read.unread), (0, 2), "both messages are c1's to read");
    let mine = store.mark_member_read(g.id, c0, 0, Utc::now()).await.expect("unread");
    assert_eq!(mine.unread, 1, "one's own message is not unread");
    let r = store.mark_member_read(g.id, c1, 2, Utc::now()).await.expect("read");
    assert_eq!((r.read_seq, r.unread), (2, 0));
    let back = store.mark_member_read(g.id, c1, 1, Utc::now()).await.expect("read");
    assert_eq!(back.read_seq, 2, "never moves back");
    store.mark_member_read(g.id, c0, 1, Utc::now()).await.expect("read");
    let mut reads: Vec<(CustomerId, i64)> =
        store.group_reads(g.id).await.expect("reads").into_iter().map(|r| (r.customer, r.read_seq)).collect();
    reads.sort();
    let mut want = vec![(c0, 1), (c1, 2)];
    want.sort();
    assert_eq!(reads, want);

    // A system record is everyone's to see but no one's unread.
    let mut system = new_message(g.id, Side::Owner, &o.id.to_hex(), "Member 2 joined");
    system.system = true;
    let stored = store.append_message(system).await.expect("append").expect("taken").into_message();
    assert!(stored.system);
    assert_eq!(store.mark_member_read(g.id, c1, 0, Utc::now()).await.expect("unread").unread, 0);
    let all = MessageQuery { conversation_id: g.id, before: None, after: None, limit: 10, include_private: false };
    assert_eq!(store.list_messages(&all).await.expect("list").len(), 3);
    let after = store.get_conversation(g.id).await.expect("read").expect("exists");
    assert_eq!(after.last_message.as_deref(), Some("Ready at five"), "not the preview");

    // Search covers a member's groups.
    let q = SearchQuery::parse("cake").expect("query");
    assert_eq!(store.search_messages(Party::Customer(c1), &q, None, 10).await.expect("search").len(), 1);
    assert!(store.search_messages(Party::Customer(c2), &q, None, 10).await.expect("search").is_empty());

    // c0 leaves, c2 joins: c0 is out (list, writes, read position), c2 in.
    let changed = store.set_group_members(g.id, &[c1, c2], Utc::now()).await.expect("change").expect("exists");
    assert_eq!(changed.group.map(|g| g.members), Some(vec![c1, c2]));
    assert_eq!(listed(Party::Customer(c0)).await, vec![direct.id]);
    assert!(say(Side::Customer, c0.to_hex(), "still here?").await.is_none());
    assert!(say(Side::Customer, c2.to_hex(), "hello all").await.is_some());
    assert_eq!(store.group_reads(g.id).await.expect("reads").iter().map(|r| r.customer).collect::<Vec<_>>(), vec![c1]);
    assert!(store.set_group_members(direct.id, &[c1], Utc::now()).await.expect("change").is_none(), "not a group");
}

/// In a business with a team each person has their own read position and
/// unread count: the customers' messages above it (not a teammate's, not a
/// note); one person's reading leaves another's count alone. A first look
/// starts where the business was.
pub(crate) async fn team_members_read_for_themselves(store: Dyn) {
    let (o, c) = setup(&store).await;
    let (conv, _) = store.get_or_create_conversation(&Participants::of(&o, &c), Utc::now()).await.expect("create");
    let (ana, ben, ada) = (UserId::new(), UserId::new(), UserId::new());
    let customer = |text: &str| new_message(conv.id, Side::Customer, &c.id.to_hex(), text);
    for text in ["hello", "anyone there?"] {
        store.append_message(customer(text)).await.expect("append").expect("taken");
    }
    store.append_message(fixtures::note(conv.id, o.id, ben, "I'll take it")).await.expect("append").expect("member");
    store.append_message(customer("my order is late")).await.expect("append").expect("taken");
    let from = |start| TeamReadFrom { conversation: conv.id, last_seq: 4, start };
    assert_eq!(store.get_conversation(conv.id).await.expect("read").expect("exists").last_seq, 4);

    // First sight: from the business's position (here 1), then their own.
    assert_eq!(store.team_unread(ada, &[from(1)]).await.expect("read"), vec![(conv.id, 2)]);
    assert_eq!(store.team_unread(ada, &[from(4)]).await.expect("read"), vec![(conv.id, 2)], "kept, not moved");

    let read = store.mark_team_read(conv.id, ana, 2, Utc::now()).await.expect("read");
    assert_eq!((read.read_seq, read.unread), (2, 1), "the note is not unread; the third message is");
    let back = store.mark_team_read(conv.id, ana, 1, Utc::now()).await.expect("read");
    assert_eq!(back.read_seq, 2, "a position never moves back");
    let ben_read = store.mark_team_read(conv.id, ben, 0, Utc::now()).await.expect("read");
    assert_eq!((ben_read.read_seq, ben_read.unread), (0, 3), "asking moves nothing");
    assert_eq!(store.team_unread(ana, &[from(0)]).await.expect("read"), vec![(conv.id, 1)]);

    store.mark_team_read(conv.id, ben, 4, Utc::now()).await.expect("read");
    assert_eq!(store.team_unread(ben, &[from(0)]).await.expect("read"), vec![(conv.id, 0)]);
    assert_eq!(store.team_unread(ana, &[from(0)]).await.expect("read"), vec![(conv.id, 1)], "ana's stays");
    // The business's own counter is another matter: nobody marked it.
    assert_eq!(store.get_conversation(conv.id).await.expect("read").expect("exists").unread.owner, 3);

    // A deleted customer message stops counting; one from the business never did.
    let newest = store.list_messages(&MessageQuery::latest(conv.id, 1)).await.expect("list");
    store.delete_message(newest[0].id, conv.id, Utc::now()).await.expect("delete");
    store.append_message(new_message(conv.id, Side::Owner, &o.id.to_hex(), "on it")).await.expect("a").expect("t");
    let later = TeamReadFrom { last_seq: 5, ..from(0) };
    assert_eq!(store.team_unread(ana, &[later]).await.expect("read"), vec![(conv.id, 0)]);

    store.forget_team_reads(ana).await.expect("forget");
    assert_eq!(store.team_unread(ana, &[later]).await.expect("read"), vec![(conv.id, 2)], "from scratch again");
    assert_eq!(store.team_unread(ben, &[later]).await.expect("read"), vec![(conv.id, 0)]);
}

/// A team adds members by email: found whatever the case, every account
/// with it (at most `limit`), nobody for an unknown one.
pub(crate) async fn users_are_found_by_email(store: Dyn) {
    let tag = UserId::new().to_hex();
    let mut one = fixtures::owner("Finn");
    one.email = format!("Finn.{tag}@Team.example");
    store.insert_user(&one).await.expect("insert");
    assert_eq!(store.users_by_email(&format!(" finn.{tag}@team.example "), 2).await.expect("find"), vec![one.id]);
    assert_eq!(store.users_by_email(&one.email, 2).await.expect("find"), vec![one.id]);
    assert!(store.users_by_email(&format!("nobody.{tag}@team.example"), 2).await.expect("find").is_empty());
    // Two accounts with one address: both found (the caller then asks for an id).
    let mut twin = fixtures::owner("Finn Two");
    twin.email = format!("shared.{tag}@team.example");
    let mut other = fixtures::owner("Finn Three");
    other.email = twin.email.clone();
    store.insert_user(&twin).await.expect("insert");
    store.insert_user(&other).await.expect("insert");
    assert_eq!(store.users_by_email(&twin.email, 2).await.expect("find").len(), 2);
    assert_eq!(store.users_by_email(&twin.email, 1).await.expect("find").len(), 1);
}
