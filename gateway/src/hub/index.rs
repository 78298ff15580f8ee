//! The local index: connections, rooms and their members, personal rooms.

use omnibiz_domain::{CustomerId, Party, UserId};
use smallvec::SmallVec;

use super::*;

pub(super) struct Conn {
    pub(super) handle: Arc<dyn Connection>,
    /// Shared, so handling an event does not copy the account.
    pub(super) actor: Arc<Actor>,
    /// Conversations joined (a handful at most).
    pub(super) joined: Joined,
    /// When its session ends (its token's `exp`, Unix seconds; see `sessions`).
    pub(super) expires_at: u64,
}

/// A connection's conversations: usually one, kept inline (no allocation).
pub(super) type Joined = SmallVec<[ConversationId; 1]>;

/// Recovery bookkeeping of a member that rejoined with `lastSeq`.
pub(super) struct Recovery {
    /// What it already has.
    pub(super) delivered: Delivered,
    /// Live events held back while history is being replayed.
    pub(super) held: Option<Vec<Arc<Envelope>>>,
}

#[derive(Default)]
pub(super) struct Member {
    pub(super) recovery: Option<Box<Recovery>>,
}

/// A principal's local connections.
#[derive(Default)]
pub(super) struct Personal {
    /// Usually one, kept inline.
    pub(super) conns: SmallVec<[ConnId; 1]>,
    /// Its topic is subscribed and presence claimed.
    pub(super) live: bool,
}

#[derive(Default)]
pub(super) struct Index {
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) rooms: HashMap<ConversationId, Room>,
    /// Personal room (`user:<id>`, by id) → local connections.
    pub(super) personal: HashMap<Party, Personal>,
    pub(super) typing: HashMap<(ConnId, ConversationId), JoinHandle<()>>,
}

/// A conversation's local members, and its stored messages in `seq` order:
/// every seq up to `floor` has been dispatched (so a message fetched
/// by a resync and also arriving live goes out once), and messages that
/// arrive ahead of a missing seq wait in `gap` until it is filled.
pub(super) struct Room {
    /// The conversation's owner and customer (they never change): a member's
    /// send needs no lookup of them.
    pub(super) parties: (UserId, CustomerId),
    /// Usually one or two (the owner and the customer), kept inline.
    pub(super) members: SmallVec<[(ConnId, Member); 2]>,
    /// Every seq up to this one has been dispatched.
    pub(super) floor: i64,
    pub(super) gap: Option<Box<Gap>>,
    /// Seqs given up on ([`Room::skip_gap`]) and when: one of them that is
    /// stored after all (a write slower than [`GAP_GIVE_UP`]) still goes out,
    /// late rather than never, for [`LATE_WINDOW`].
    pub(super) skipped: Skipped,
}

/// Seqs given up on, and when. Rare: a room without any holds one empty
/// pointer (a room is kept per joined conversation, so its size is paid
/// per idle connection).
#[derive(Default)]
pub(super) struct Skipped(Option<Box<[(i64, std::time::Instant)]>>);

impl Skipped {
    /// Forgets `seq` if it was given up on; true if it was.
    fn take(&mut self, seq: i64) -> bool {
        let Some(v) = self.0.as_deref() else { return false };
        if !v.iter().any(|(s, _)| *s == seq) {
            return false;
        }
        let rest: Vec<_> = v.iter().copied().filter(|(s, _)| *s != seq).collect();
        self.0 = (!rest.is_empty()).then(|| rest.into_boxed_slice());
        true
    }

    /// Records `seqs` as given up on at `now`, forgetting those older than [`LATE_WINDOW`].
    fn record(&mut self, seqs: std::ops::Range<i64>, now: std::time::Instant) {
        let kept = self.0.take().into_iter().flat_map(|v| v.into_vec());
        let all: Vec<_> =
            kept.filter(|(_, at)| now.duration_since(*at) < LATE_WINDOW).chain(seqs.map(|s| (s, now))).collect();
        self.0 = (!all.is_empty()).then(|| all.into_boxed_slice());
    }
}

/// What to do with a stored message that reached a room.
pub(super) enum Order {
    /// Already sent (or history from before the room existed).
    Duplicate,
    /// Waits for a missing seq; `opened` when this started the wait.
    Held { opened: bool },
    /// Next in line: send it now.
    Now,
    /// A seq given up on that was stored after all: send it now, after higher ones.
    Late,
}

/// Messages held behind a missing seq.
pub(super) struct Gap {
    pub(super) held: std::collections::BTreeMap<i64, Arc<Envelope>>,
    /// When the gap opened (it is given up on after [`GAP_GIVE_UP`]).
    pub(super) since: std::time::Instant,
}

/// How long a missing seq is waited for — counting only while the store
/// answers — before the messages after it go out anyway: a seq that was
/// taken but never stored (a writer that died between taking it and
/// inserting, a lost idempotency race) never comes. Long enough for the
/// slow inserts of a database that just came back under a backlog
/// (tests/e2e/chaos.rs); a write slower still is delivered late, not lost.
pub(super) const GAP_GIVE_UP: Duration = Duration::from_secs(5);

/// How long a seq given up on is remembered, to deliver it late if it comes.
pub(super) const LATE_WINDOW: Duration = Duration::from_secs(120);

/// How often a gap is looked for in the store while it lasts.
pub(super) const GAP_POLL: Duration = Duration::from_millis(150);

impl Room {
    /// A room whose messages up to `floor` are history (not sent live).
    pub(super) fn new(floor: i64, parties: (UserId, CustomerId)) -> Self {
        Self { parties, members: SmallVec::new(), floor, gap: None, skipped: Skipped::default() }
    }

    /// Where one stored message goes: out now (the caller sends it, then
    /// whatever [`Room::release`] unblocks), held behind a missing seq, or
    /// nowhere (a duplicate).
    pub(super) fn in_order(&mut self, seq: i64, env: &Arc<Envelope>) -> Order {
        let floor = self.floor;
        if seq <= floor {
            return if self.skipped.take(seq) { Order::Late } else { Order::Duplicate };
        }
        if self.gap.as_ref().is_some_and(|g| g.held.contains_key(&seq)) {
            return Order::Duplicate;
        }
        if seq > floor + 1 {
            let opened = self.gap.is_none();
            let gap = self.gap.get_or_insert_with(|| {
                Box::new(Gap { held: std::collections::BTreeMap::new(), since: std::time::Instant::now() })
            });
            gap.held.insert(seq, Arc::clone(env));
            return Order::Held { opened };
        }
        self.floor = seq;
        Order::Now
    }

    /// Moves held messages that are now next in line to `out`.
    pub(super) fn release(&mut self, out: &mut Vec<Arc<Envelope>>) {
        let Some(gap) = self.gap.as_mut() else { return };
        while let Some(e) = gap.held.remove(&(self.floor + 1)) {
            self.floor += 1;
            out.push(e);
        }
        if gap.held.is_empty() {
            self.gap = None;
        }
    }

    /// Gives up on the missing seqs below the first held message.
    pub(super) fn skip_gap(&mut self, out: &mut Vec<Arc<Envelope>>) {
        if let Some(first) = self.gap.as_ref().and_then(|g| g.held.keys().next().copied()) {
            // Bounded: a gap is a handful of seqs; a runaway one is not remembered whole.
            let from = (self.floor + 1).max(first - 1000);
            self.skipped.record(from..first, std::time::Instant::now());
            self.floor = self.floor.max(first - 1);
            self.release(out);
        }
    }
}

pub(super) fn member_mut(room: &mut Room, id: ConnId) -> Option<&mut Member> {
    room.members.iter_mut().find(|(c, _)| *c == id).map(|(_, m)| m)
}

/// Removes `id` from a room, and the room once it is empty.
pub(super) fn leave_room(rooms: &mut HashMap<ConversationId, Room>, conv: ConversationId, id: ConnId) {
    if let Some(room) = rooms.get_mut(&conv) {
        room.members.retain(|(c, _)| *c != id);
        if room.members.is_empty() {
            rooms.remove(&conv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnibiz_service::bus::{Envelope, EventKind};

    fn env() -> Arc<Envelope> {
        Arc::new(Envelope::new(EventKind::MessageCreated, None, serde_json::json!({})))
    }

    fn room() -> Room {
        Room::new(10, (UserId::from(ObjectId::new()), CustomerId::from(ObjectId::new())))
    }

    #[test]
    fn a_room_sends_in_seq_order_and_holds_what_comes_early() {
        let mut r = room();
        assert!(matches!(r.in_order(10, &env()), Order::Duplicate), "history");
        assert!(matches!(r.in_order(11, &env()), Order::Now));
        assert!(matches!(r.in_order(13, &env()), Order::Held { opened: true }));
        assert!(matches!(r.in_order(14, &env()), Order::Held { opened: false }));
        assert!(matches!(r.in_order(13, &env()), Order::Duplicate), "already held");
        assert!(matches!(r.in_order(12, &env()), Order::Now));
        let mut out = Vec::new();
        r.release(&mut out);
        assert_eq!((out.len(), r.floor), (2, 14));
        assert!(r.gap.is_none());
    }

    #[test]
    fn a_seq_given_up_on_goes_out_late_once() {
        let mut r = room();
        assert!(matches!(r.in_order(13, &env()), Order::Held { opened: true }));
        let mut out = Vec::new();
        r.skip_gap(&mut out);
        assert_eq!((out.len(), r.floor), (1, 13));
        assert!(r.gap.is_none());
        assert!(matches!(r.in_order(12, &env()), Order::Late));
        assert!(matches!(r.in_order(12, &env()), Order::Duplicate), "late once");
        assert!(matches!(r.in_order(11, &env()), Order::Late));
        assert!(r.skipped.0.is_none(), "nothing held once both came");
    }
}
