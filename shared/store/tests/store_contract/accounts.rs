//! Users and customers.

use super::*;

pub(crate) async fn users_and_customers_round_trip(store: Dyn) {
    let (o, c) = setup(&store).await;
    assert_eq!(store.get_user(o.id).await.expect("get user"), Some(o.clone()));
    let got = store.get_customer(c.id).await.expect("get customer").expect("customer exists");
    assert_eq!(got.name, c.name);
    assert_eq!(got.invited_by, o.id);
    assert_eq!(got.total_orders, 3);
    assert!((got.total_spent - 129.5).abs() < 1e-9);
    assert!(store.get_user(UserId::new()).await.expect("get").is_none());
    assert_eq!(store.customers_by_ids(&[c.id, CustomerId::new()]).await.expect("by ids").len(), 1);
    // Which accounts still exist, by id, both kinds in one call.
    let (ghost_owner, ghost_customer) = (Party::Owner(UserId::new()), Party::Customer(CustomerId::new()));
    let asked = [Party::Owner(o.id), Party::Customer(c.id), ghost_owner, ghost_customer];
    let found = store.existing_accounts(&asked).await.expect("existing");
    assert_eq!(found, [Party::Owner(o.id), Party::Customer(c.id)].into_iter().collect());
    assert!(store.existing_accounts(&[]).await.expect("none asked").is_empty());
}

pub(crate) async fn customer_list_pages_and_searches(store: Dyn) {
    let o = owner();
    store.insert_user(&o).await.expect("insert user");
    let names = ["Alice Blue", "Bob Green", "Carol Blue", "Dan (Red)", "Eve 100%"];
    let cs: Vec<Customer> = names.iter().map(|n| customer(o.id, n)).collect();
    store.insert_customers(&cs).await.expect("insert");
    // Someone else's customer never shows up.
    store.insert_customers(&[customer(UserId::new(), "Alice Other")]).await.expect("insert");

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.list_customers(&CustomerQuery { owner: o.id, q: None, before, limit: 2 }).await.expect("list");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = page.last().map(|c| c.id);
        seen.extend(page.into_iter().map(|c| c.name));
    }
    assert_eq!(seen.len(), 5, "every customer exactly once: {seen:?}");
    let hit = |q: &str| {
        let store = store.clone();
        let q = CustomerQuery { owner: o.id, q: Some(q.into()), before: None, limit: 50 };
        async move { store.list_customers(&q).await.expect("search").len() }
    };
    assert_eq!(hit("blue").await, 2, "case-insensitive substring");
    assert_eq!(hit("(red)").await, 1, "regex characters are literal");
    assert_eq!(hit("100%").await, 1, "LIKE wildcards are literal");
    assert_eq!(hit("mail.example").await, 5, "email matches");
    assert_eq!(hit("zzz").await, 0);
}

/// A revocation is kept per principal and only ever moves forward in time.
pub(crate) async fn session_revocations_move_forward_only(store: Dyn) {
    let (o, c) = setup(&store).await;
    let owner = omnibiz_domain::Party::Owner(o.id);
    let customer = omnibiz_domain::Party::Customer(c.id);
    assert_eq!(store.sessions_revoked_at(owner).await.expect("read"), None, "never revoked");
    let t1 = chrono::SubsecRound::trunc_subsecs(Utc::now(), 3);
    store.revoke_sessions(owner, t1).await.expect("revoke");
    assert_eq!(store.sessions_revoked_at(owner).await.expect("read"), Some(t1));
    assert_eq!(store.sessions_revoked_at(customer).await.expect("read"), None, "one principal's only");
    store.revoke_sessions(owner, t1 - Duration::hours(1)).await.expect("an older one");
    assert_eq!(store.sessions_revoked_at(owner).await.expect("read"), Some(t1), "never moves back");
    let t2 = t1 + Duration::seconds(5);
    store.revoke_sessions(owner, t2).await.expect("a newer one");
    assert_eq!(store.sessions_revoked_at(owner).await.expect("read"), Some(t2));
}
