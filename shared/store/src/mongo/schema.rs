//! The indexes the store creates and checks, and the write concern.

use mongodb::IndexModel;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::{ClientOptions, IndexOptions};

/// An index the store relies on.
pub(crate) struct IndexSpec {
    pub(crate) keys: Document,
    pub(crate) unique: bool,
    /// Only documents with this field are indexed (a partial index).
    pub(crate) only_with: Option<&'static str>,
}

impl IndexSpec {
    fn new(keys: Document) -> Self {
        Self { keys, unique: false, only_with: None }
    }
    fn unique(mut self) -> Self {
        self.unique = true;
        self
    }
    fn only_with(mut self, field: &'static str) -> Self {
        self.only_with = Some(field);
        self
    }
    /// MongoDB's default name (`conversationId_1_seq_1`), which existing databases use.
    pub(crate) fn name(&self) -> String {
        self.keys.iter().map(|(k, v)| format!("{k}_{v}")).collect::<Vec<_>>().join("_")
    }
    pub(super) fn options(&self) -> IndexOptions {
        let mut o = IndexOptions::builder().name(self.name()).build();
        if self.unique {
            o.unique = Some(true);
        }
        if let Some(f) = self.only_with {
            o.partial_filter_expression = Some(doc! { f: {"$exists": true} });
        }
        o
    }
    /// Whether an existing index has this one's name.
    pub(crate) fn named_like(&self, existing: &IndexModel) -> bool {
        existing.options.as_ref().and_then(|o| o.name.as_deref()) == Some(self.name().as_str())
    }
    /// Whether an existing index (from `listIndexes`) is this one, options included.
    pub(crate) fn matches(&self, existing: &IndexModel) -> bool {
        let o = existing.options.as_ref();
        let partial = o.and_then(|o| o.partial_filter_expression.as_ref());
        same_keys(&existing.keys, &self.keys)
            && is_unique(existing) == self.unique
            && match (self.only_with, partial) {
                (None, None) => true,
                (Some(f), Some(p)) => p.contains_key(f),
                _ => false,
            }
    }
}

pub(super) fn is_unique(index: &IndexModel) -> bool {
    index.options.as_ref().and_then(|o| o.unique).unwrap_or(false)
}

pub(super) fn same_keys(a: &Document, b: &Document) -> bool {
    let num = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) => Some(*d as i64),
        _ => None,
    };
    a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && num(va) == num(vb))
}

/// The indexes the store creates on `collection`, for tools that reproduce
/// its writes (the load generator's database ceiling).
pub fn index_models(collection: &str) -> Vec<IndexModel> {
    wanted_indexes()
        .into_iter()
        .filter(|(c, _)| *c == collection)
        .map(|(_, spec)| IndexModel::builder().keys(spec.keys.clone()).options(spec.options()).build())
        .collect()
}

/// Every index, by collection.
pub(crate) fn wanted_indexes() -> Vec<(&'static str, IndexSpec)> {
    vec![
        ("conversations", IndexSpec::new(doc! {"businessOwnerId": 1, "customerId": 1}).unique()),
        ("conversations", IndexSpec::new(doc! {"businessOwnerId": 1, "activityAt": -1, "_id": -1})),
        ("conversations", IndexSpec::new(doc! {"customerId": 1, "activityAt": -1, "_id": -1})),
        ("messages", IndexSpec::new(doc! {"conversationId": 1, "seq": 1}).unique().only_with("seq")),
        (
            "messages",
            IndexSpec::new(doc! {"conversationId": 1, "clientMessageId": 1}).unique().only_with("clientMessageId"),
        ),
        ("customers", IndexSpec::new(doc! {"invitedBy": 1, "_id": -1})),
        // The webhook outbox: messages and conversations with events not fanned out yet.
        ("messages", IndexSpec::new(doc! {"hook": 1}).only_with("hook")),
        ("messages", IndexSpec::new(doc! {"hookPending": 1}).only_with("hookPending")),
        ("conversations", IndexSpec::new(doc! {"hookPending": 1}).only_with("hookPending")),
        ("webhook_endpoints", IndexSpec::new(doc! {"owner": 1})),
        // The sweeper's query: unconfirmed uploads, oldest first.
        ("uploads", IndexSpec::new(doc! {"confirmed": 1, "createdAt": 1})),
        ("quick_replies", IndexSpec::new(doc! {"owner": 1, "shortcut": 1}).unique()),
        ("webhook_deliveries", IndexSpec::new(doc! {"status": 1, "nextAt": 1})),
        ("webhook_deliveries", IndexSpec::new(doc! {"endpointId": 1, "createdAt": -1, "_id": -1})),
        // One browser belongs to one person; a person's browsers are listed.
        ("push_subscriptions", IndexSpec::new(doc! {"endpoint": 1}).unique()),
        ("push_subscriptions", IndexSpec::new(doc! {"party": 1, "createdAt": 1})),
        ("team_members", IndexSpec::new(doc! {"business": 1, "addedAt": 1})),
        ("conversations", IndexSpec::new(doc! {"members": 1, "activityAt": -1, "_id": -1}).only_with("members")),
        ("group_reads", IndexSpec::new(doc! {"conversation": 1})),
        ("team_reads", IndexSpec::new(doc! {"user": 1})),
    ]
}

/// The store's write concern: an acknowledged write must survive a crash of
/// the server, so wait for the journal (`j: true`) unless the URI sets a
/// journal option of its own. Without it a SIGKILLed server lost messages it
/// had already acknowledged (tests/e2e/chaos.rs). `w` stays the server's default
/// (`majority` on replica sets). Public so `raw-insert` writes the same way.
pub fn durable_writes(opts: &mut ClientOptions) {
    let wc = opts.write_concern.get_or_insert_with(Default::default);
    if wc.journal.is_none() {
        wc.journal = Some(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_specs_compare_with_what_list_indexes_returns() {
        let spec = IndexSpec::new(doc! {"conversationId": 1, "seq": 1}).unique().only_with("seq");
        assert_eq!(spec.name(), "conversationId_1_seq_1");
        let full = IndexModel::builder()
            .keys(doc! {"conversationId": 1_i32, "seq": 1_i32})
            .options(IndexOptions::builder().name("conversationId_1_seq_1".to_owned()).unique(true).build())
            .build();
        assert!(spec.named_like(&full) && !spec.matches(&full), "the earlier full unique index is stale");
        let partial = IndexModel::builder().keys(spec.keys.clone()).options(spec.options()).build();
        assert!(spec.matches(&partial));
    }
}
