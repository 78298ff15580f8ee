//! The local index: connections, rooms and their members, personal rooms.

use super::*;

pub(super) struct Conn {
    pub(super) handle: Arc<dyn Connection>,
    /// Shared, so handling an event does not copy the account.
    pub(super) actor: Arc<Actor>,
    /// Conversations joined (a handful at most).
    pub(super) joined: Vec<ConversationId>,
}

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
    pub(super) conns: Vec<ConnId>,
    /// Its topic is subscribed and presence claimed.
    pub(super) live: bool,
}

#[derive(Default)]
pub(super) struct Index {
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) rooms: HashMap<ConversationId, Room>,
    /// Personal room (`user:<id>`) → local connections.
    pub(super) personal: HashMap<String, Personal>,
    pub(super) typing: HashMap<(ConnId, ConversationId), JoinHandle<()>>,
}

/// A conversation's local members, and which of its messages this gateway
/// has dispatched (so a message fetched by a resync and also arriving live
/// is delivered once).
pub(super) struct Room {
    pub(super) members: Vec<(ConnId, Member)>,
    pub(super) seen: Delivered,
}

impl Room {
    pub(super) fn new(last_seq: i64) -> Self {
        Self { members: Vec::new(), seen: Delivered::after(last_seq) }
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
