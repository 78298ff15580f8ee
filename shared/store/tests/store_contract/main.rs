//! One contract suite, run against every `Store` implementation: embedded
//! SQLite (a temporary file) and MongoDB (`MONGODB_URI`, a fresh database per
//! test; `scripts/test.sh` starts a real server).

use std::sync::Arc;

use chrono::{Duration, Utc};
use omnibiz_domain::EndpointId;
use omnibiz_domain::events;
use omnibiz_domain::webhook::{Delivery, DeliveryStatus, HookEvent, OutboxEvent, Target};
use omnibiz_domain::{
    Attachment, AudioInfo, ConversationId, ConversationStatus, Customer, CustomerId, MessageStatus, Priority, Side,
    User, UserId,
};
use omnibiz_store::fixtures;
use omnibiz_store::mongo::MongoStore;
use omnibiz_store::sqlite::SqliteStore;
use omnibiz_store::{
    Appended, ConversationCounts, ConversationPatch, ConversationQuery, CustomerQuery, MessageQuery, NewMessage,
    OwnerShare, Participants, Party, Store,
};

mod accounts;
mod conversations;
mod messages;
mod notifications;
mod teams;
mod uploads;
mod webhooks;

use accounts::*;
use conversations::*;
use messages::*;
use notifications::*;
use teams::*;
use uploads::*;
use webhooks::*;

type Dyn = Arc<dyn Store>;

/// Keeps a backend's resources alive for the test and cleans up afterwards.
enum Guard {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Mongo(MongoStore),
}

impl Guard {
    async fn finish(self) {
        if let Guard::Mongo(m) = self {
            m.drop_database().await.expect("dropping the test database");
        }
    }
}

fn sqlite() -> (Dyn, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("test.db")).expect("open sqlite");
    (Arc::new(store), Guard::Sqlite(dir))
}

async fn mongo() -> (Dyn, Guard) {
    let uri = std::env::var("MONGODB_URI")
        .expect("MONGODB_URI is not set: run scripts/test.sh, which starts a MongoDB-compatible server");
    let db = format!("omnibiz_contract_{}", bson::oid::ObjectId::new());
    let store = MongoStore::connect(&uri, Some(&db)).await.expect("connect to MongoDB");
    store.ensure_indexes().await.expect("create indexes");
    // Index creation must be idempotent.
    store.ensure_indexes().await.expect("create indexes again");
    (Arc::new(store.clone()), Guard::Mongo(store))
}

fn owner() -> User {
    User { email: "ada@shop.example".into(), business_name: Some("Ada's Shop".into()), ..fixtures::owner("Ada Owner") }
}

fn customer(owner: UserId, name: &str) -> Customer {
    Customer {
        phone: Some("+1 555 0199".into()),
        total_orders: 3,
        total_spent: 129.5,
        last_order_date: Some(Utc::now() - Duration::days(2)),
        last_login: Some(Utc::now() - Duration::hours(5)),
        ..fixtures::customer(owner, name)
    }
}

fn new_message(conv: omnibiz_domain::ConversationId, from: Side, sender: &str, text: &str) -> NewMessage {
    fixtures::message(conv, from, sender, text)
}

/// A pending delivery, due and made at `at`, with an empty body and log.
fn pending_delivery(
    id: String,
    target: Target,
    owner: UserId,
    event: (&str, HookEvent),
    conversation: ConversationId,
    at: chrono::DateTime<Utc>,
) -> Delivery {
    Delivery {
        id,
        target,
        owner,
        event_id: event.0.to_owned(),
        kind: event.1,
        conversation,
        body: "{}".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_at: at,
        created_at: at,
        updated_at: at,
        log: Vec::new(),
        unread_check: None,
    }
}

async fn setup(store: &Dyn) -> (User, Customer) {
    let o = owner();
    store.insert_user(&o).await.expect("insert user");
    let c = customer(o.id, "Carl Customer");
    store.insert_customers(std::slice::from_ref(&c)).await.expect("insert customer");
    (o, c)
}

macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = super::sqlite();
                    super::$case(store).await;
                    guard.finish().await;
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (store, guard) = super::mongo().await;
                    super::$case(store).await;
                    guard.finish().await;
                }
            )*
        }
    };
}

contract!(
    message_created_is_built_at_fan_out_from_the_message_as_it_is,
    users_and_customers_round_trip,
    session_revocations_move_forward_only,
    customer_list_pages_and_searches,
    create_or_get_is_idempotent_under_concurrency,
    parallel_appends_get_distinct_increasing_seqs,
    client_message_id_stores_once,
    append_checks_the_sender_and_a_retry_leaves_no_trace,
    new_messages_and_retries_together_each_get_their_own_outcome,
    message_pages_by_seq,
    mark_read_resets_unread_and_never_moves_back,
    conversation_list_orders_by_activity_with_cursor,
    conversation_patch,
    archiving_is_per_side_and_a_new_message_brings_it_back,
    webhook_outbox_records_each_change_once,
    claims_share_out_among_owners,
    endpoint_secrets_can_be_resealed,
    uploads_are_claimed_once_and_confirmed,
    edit_and_delete_keep_history_honest,
    reactions_toggle_once_per_person_and_record_their_events,
    quick_replies_keep_one_shortcut_per_owner,
    search_finds_candidates_in_the_partys_conversations,
    message_changes_record_their_webhook_events,
    an_outbox_backlog_drains_in_passes_each_event_once,
    push_subscriptions_belong_to_one_person,
    preferences_round_trip_and_default,
    notification_deliveries_keep_their_target,
    a_user_is_in_one_team_at_most,
    conversations_filter_and_count_by_assignee,
    internal_notes_stay_on_the_business_side,
    groups_keep_per_member_state,
    team_members_read_for_themselves,
    users_are_found_by_email,
    a_pass_reads_every_business_and_browser_at_once,
);
