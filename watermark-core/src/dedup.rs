//! The set of (seed, token) tuples already scored: each counts once.
//!
//! An open-addressing table of 12-byte slots kept at most 3/4 full (16 bytes per tuple when sized
//! ahead), exact
//! (the full 96-bit tuple is stored, no fingerprints), with insertions done in batches whose slots
//! are prefetched first: at a million tuples the table outgrows the caches and a lookup is a
//! memory round trip, so overlapping them is what sets detection speed.

/// Token value marking an empty slot; token ids are below 2^24.
const EMPTY: u32 = u32::MAX;

/// Exact set of (seed, token) tuples.
#[derive(Debug, Clone)]
pub struct TupleSet {
    seeds: Vec<u64>,
    tokens: Vec<u32>,
    len: usize,
}

impl Default for TupleSet {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl TupleSet {
    /// A set that holds `capacity` tuples without growing.
    pub fn with_capacity(capacity: usize) -> Self {
        // Any size works (slots are found by a multiply-high, not a mask), so the table is
        // exactly 4/3 of the capacity: 16 bytes per tuple.
        let slots = (capacity.saturating_mul(4) / 3 + 1).max(16);
        TupleSet {
            seeds: vec![0; slots],
            tokens: vec![EMPTY; slots],
            len: 0,
        }
    }

    /// Tuples in the set.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the table (for memory reports).
    pub fn memory_bytes(&self) -> usize {
        self.seeds.len() * 12
    }

    #[inline]
    fn slot(&self, seed: u64, token: u32) -> usize {
        // Fibonacci hashing of the seed mixed with the token; seeds are already well spread.
        let h = (seed ^ u64::from(token).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .wrapping_mul(0xff51_afd7_ed55_8ccd);
        ((u128::from(h) * self.seeds.len() as u128) >> 64) as usize
    }

    /// Inserts one tuple; true when it was not there yet.
    #[inline]
    pub fn insert(&mut self, seed: u64, token: u32) -> bool {
        if (self.len + 1) * 4 > self.seeds.len() * 3 {
            self.grow();
        }
        let slots = self.seeds.len();
        let mut i = self.slot(seed, token);
        loop {
            let t = self.tokens[i];
            if t == EMPTY {
                self.seeds[i] = seed;
                self.tokens[i] = token;
                self.len += 1;
                return true;
            }
            if t == token && self.seeds[i] == seed {
                return false;
            }
            i += 1;
            if i == slots {
                i = 0;
            }
        }
    }

    /// Whether the set holds the tuple.
    #[inline]
    pub fn contains(&self, seed: u64, token: u32) -> bool {
        let slots = self.seeds.len();
        let mut i = self.slot(seed, token);
        loop {
            let t = self.tokens[i];
            if t == EMPTY {
                return false;
            }
            if t == token && self.seeds[i] == seed {
                return true;
            }
            i += 1;
            if i == slots {
                i = 0;
            }
        }
    }

    /// Inserts a batch, writing into `fresh[i]` whether `tuples[i]` was new. Prefetches every
    /// slot of the batch before touching any, so the memory accesses overlap.
    pub fn insert_batch(&mut self, tuples: &[(u64, u32)], fresh: &mut [bool]) {
        if (self.len + tuples.len()) * 4 > self.seeds.len() * 3 {
            self.reserve(tuples.len());
        }
        for &(seed, token) in tuples {
            self.prefetch(self.slot(seed, token));
        }
        for (&(seed, token), f) in tuples.iter().zip(fresh.iter_mut()) {
            *f = self.insert(seed, token);
        }
    }

    #[inline]
    fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: prefetching is only a hint and never faults; the pointers are in bounds.
            unsafe {
                _mm_prefetch(self.seeds.as_ptr().add(i).cast::<i8>(), _MM_HINT_T0);
                _mm_prefetch(self.tokens.as_ptr().add(i).cast::<i8>(), _MM_HINT_T0);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// Makes room for `additional` more tuples.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.len + additional;
        if need * 4 > self.seeds.len() * 3 {
            self.rehash(Self::with_capacity(need.max(self.grown())));
        }
    }

    fn grow(&mut self) {
        self.rehash(Self::with_capacity(self.grown()));
    }

    /// The capacity to grow to: up to ×8 while the table stays within 1M tuples (16 MB), where
    /// rehashing often would cost as much as the inserts; ×2 beyond, where memory counts.
    fn grown(&self) -> usize {
        (self.len * 8).clamp(1024, (self.len * 2).max(1 << 20))
    }

    fn rehash(&mut self, mut bigger: TupleSet) {
        // Moving a large table is as memory-bound as scoring: batch the moves and prefetch each
        // batch's slots first, as `insert_batch` does.
        const BATCH: usize = 32;
        let mut batch = [(0u64, 0u32); BATCH];
        let mut n = 0;
        let mut fresh = [false; BATCH];
        for (&seed, &token) in self.seeds.iter().zip(&self.tokens) {
            if token != EMPTY {
                batch[n] = (seed, token);
                n += 1;
                if n == BATCH {
                    bigger.insert_batch(&batch, &mut fresh);
                    n = 0;
                }
            }
        }
        bigger.insert_batch(&batch[..n], &mut fresh[..n]);
        *self = bigger;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    proptest! {
        #[test]
        fn behaves_like_a_hash_set(tuples in prop::collection::vec((0u64..50, 0u32..50), 0..400), batch in 1usize..40) {
            let mut set = TupleSet::with_capacity(3);
            let mut reference = HashSet::new();
            for chunk in tuples.chunks(batch) {
                let mut fresh = vec![false; chunk.len()];
                set.insert_batch(chunk, &mut fresh);
                for (t, f) in chunk.iter().zip(fresh) {
                    prop_assert_eq!(f, reference.insert(*t));
                }
            }
            prop_assert_eq!(set.len(), reference.len());
            for seed in 0u64..50 {
                prop_assert_eq!(set.contains(seed, 7), reference.contains(&(seed, 7)));
            }
        }
    }

    #[test]
    fn sixteen_bytes_per_tuple_at_most_when_sized() {
        let set = TupleSet::with_capacity(1_000_000);
        assert!(
            set.memory_bytes() <= 1_000_000 * 16 + 16,
            "{}",
            set.memory_bytes()
        );
    }
}
