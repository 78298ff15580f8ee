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
/// every seq up to `seen.floor()` has been dispatched (so a message fetched
/// by a resync and also arriving live goes out once), and messages that
/// arrive ahead of a missing seq wait in `gap` until it is filled.
pub(super) struct Room {
    /// The conversation's owner and customer (they never change): a member's
    /// send needs no lookup of them.
    pub(super) parties: (UserId, CustomerId),
    /// Usually one or two (the owner and the customer), kept inline.
    pub(super) members: SmallVec<[(ConnId, Member); 2]>,
    pub(super) seen: Delivered,
    pub(super) gap: Option<Box<Gap>>,
    /// Seqs given up on ([`Room::skip_gap`]) and when: one of them that is
    /// stored after all (a write slower than [`GAP_GIVE_UP`]) still goes out,
    /// late rather than never, for [`LATE_WINDOW`].
    pub(super) skipped: Vec<(i64, std::time::Instant)>,
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
        Self { parties, members: SmallVec::new(), seen: Delivered::after(floor), gap: None, skipped: Vec::new() }
    }

    /// Where one stored message goes: out now (the caller sends it, then
    /// whatever [`Room::release`] unblocks), held behind a missing seq, or
    /// nowhere (a duplicate).
    pub(super) fn in_order(&mut self, seq: i64, env: &Arc<Envelope>) -> Order {
        let floor = self.seen.floor();
        if seq <= floor {
            return match self.skipped.iter().position(|(s, _)| *s == seq) {
                Some(i) => {
                    self.skipped.swap_remove(i);
                    Order::Late
                }
                None => Order::Duplicate,
            };
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
        self.seen.advance_to(seq);
        Order::Now
    }

    /// Moves held messages that are now next in line to `out`.
    pub(super) fn release(&mut self, out: &mut Vec<Arc<Envelope>>) {
        let Some(gap) = self.gap.as_mut() else { return };
        while let Some(e) = gap.held.remove(&(self.seen.floor() + 1)) {
            self.seen.advance_to(self.seen.floor() + 1);
            out.push(e);
        }
        if gap.held.is_empty() {
            self.gap = None;
        }
    }

    /// Gives up on the missing seqs below the first held message.
    pub(super) fn skip_gap(&mut self, out: &mut Vec<Arc<Envelope>>) {
        if let Some(first) = self.gap.as_ref().and_then(|g| g.held.keys().next().copied()) {
            let now = std::time::Instant::now();
            self.skipped.retain(|(_, at)| now.duration_since(*at) < LATE_WINDOW);
            // Bounded: a gap is a handful of seqs; a runaway one is not remembered whole.
            let from = (self.seen.floor() + 1).max(first - 1000);
            self.skipped.extend((from..first).map(|s| (s, now)));
            self.seen.advance_to(first - 1);
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
