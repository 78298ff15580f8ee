//! Per-member delivery bookkeeping for recovery: which `seq`s a socket that
//! rejoined with `lastSeq` has already been sent, so replayed history and
//! live events meet with no gap and no duplicate, even when live events
//! arrive out of `seq` order (several senders, several API pods).

use std::collections::BTreeSet;

/// Most out-of-order seqs remembered above the contiguous floor; past this,
/// the floor jumps (a seq that never arrives — e.g. taken by a lost race —
/// must not grow memory forever).
const MAX_ABOVE: usize = 256;

#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// Every seq `<= floor` was delivered (or predates the client's `lastSeq`).
    floor: i64,
    above: BTreeSet<i64>,
}

impl Delivered {
    pub fn after(last_seq: i64) -> Self {
        Self { floor: last_seq, above: BTreeSet::new() }
    }

    /// Every seq up to this one was delivered.
    pub fn floor(&self) -> i64 {
        self.floor
    }

    /// Everything up to `seq` counts as delivered (a gap given up on, or
    /// in-order delivery moving on).
    pub fn advance_to(&mut self, seq: i64) {
        if seq > self.floor {
            self.floor = seq;
            self.above.retain(|&s| s > seq);
        }
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
    }

    /// True (and records it) when `seq` has not been delivered yet.
    pub fn accept(&mut self, seq: i64) -> bool {
        if seq <= self.floor || !self.above.insert(seq) {
            return false;
        }
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        if self.above.len() > MAX_ABOVE
            && let Some(&lowest) = self.above.first()
        {
            self.floor = lowest - 1;
            while self.above.remove(&(self.floor + 1)) {
                self.floor += 1;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_duplicates_in_or_out_of_order() {
        let mut d = Delivered::after(10);
        assert!(!d.accept(10), "already had it");
        assert!(d.accept(12), "out of order is fine");
        assert!(d.accept(11));
        assert!(!d.accept(12));
        assert!(!d.accept(11));
        assert!(d.accept(13));
        assert_eq!(d.floor, 13);
        assert!(d.above.is_empty());
    }

    #[test]
    fn a_seq_that_never_comes_does_not_grow_memory() {
        let mut d = Delivered::after(0);
        for s in 2..2 + MAX_ABOVE as i64 + 10 {
            assert!(d.accept(s));
        }
        assert!(d.above.len() <= MAX_ABOVE);
    }
}
