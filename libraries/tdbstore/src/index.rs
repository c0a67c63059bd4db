//! The RAM index: one 8-byte entry per live key, in caller-provided storage.
//!
//! Entries are kept sorted by key hash, descending, which is Mbed's iteration order. Lookup is
//! a binary search for the hash followed by one flash read per entry with that hash to
//! compare the key (Mbed scans the whole table linearly). Offsets are relative to the start
//! of the active area.

/// One live key: its hash and where its newest record starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexEntry {
    /// [`crate::format::key_hash`] of the key.
    pub hash: u32,
    /// Offset of the record in the active area.
    pub offset: u32,
}

/// The sorted index over a caller's slice.
pub(crate) struct Index<'a> {
    slots: &'a mut [IndexEntry],
    len: usize,
}

impl<'a> Index<'a> {
    pub(crate) fn new(slots: &'a mut [IndexEntry]) -> Self {
        Index { slots, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn entries(&self) -> &[IndexEntry] {
        &self.slots[..self.len]
    }

    pub(crate) fn get(&self, pos: usize) -> Option<IndexEntry> {
        self.entries().get(pos).copied()
    }

    pub(crate) fn set_offset(&mut self, pos: usize, offset: u32) {
        if pos < self.len {
            self.slots[pos].offset = offset;
        }
    }

    /// The positions holding `hash`: `lo..hi` (empty at the insertion point if none).
    pub(crate) fn hash_range(&self, hash: u32) -> (usize, usize) {
        let e = self.entries();
        let lo = e.partition_point(|x| x.hash > hash);
        let hi = lo + e[lo..].partition_point(|x| x.hash == hash);
        (lo, hi)
    }

    /// Inserts at `pos` (which must keep the order). False if full.
    pub(crate) fn insert(&mut self, pos: usize, entry: IndexEntry) -> bool {
        if self.len == self.slots.len() || pos > self.len {
            return false;
        }
        self.slots.copy_within(pos..self.len, pos + 1);
        self.slots[pos] = entry;
        self.len += 1;
        true
    }

    pub(crate) fn remove(&mut self, pos: usize) {
        if pos < self.len {
            self.slots.copy_within(pos + 1..self.len, pos);
            self.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_sorted_descending_and_finds_ranges() {
        let mut slots = [IndexEntry::default(); 4];
        let mut ix = Index::new(&mut slots);
        for (h, o) in [(5, 1), (9, 2), (5, 3), (1, 4)] {
            let (lo, hi) = ix.hash_range(h);
            assert!(ix.insert(hi, IndexEntry { hash: h, offset: o }));
            assert!(lo <= hi);
        }
        let hashes: Vec<u32> = ix.entries().iter().map(|e| e.hash).collect();
        assert_eq!(hashes, [9, 5, 5, 1]);
        assert_eq!(ix.hash_range(5), (1, 3));
        assert_eq!(ix.hash_range(7), (1, 1));
        assert!(!ix.insert(0, IndexEntry { hash: 10, offset: 0 }), "full");
        ix.remove(1);
        assert_eq!(ix.entries()[1].offset, 3);
        assert_eq!(ix.len(), 3);
    }
}
