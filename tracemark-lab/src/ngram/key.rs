//! Packed context keys: the last `order - 1` tokens of a history in one `u64`, [`TOKEN_BITS`]
//! bits a token, oldest in the high bits, and the hash the tables use for them.

use std::hash::{BuildHasherDefault, Hasher};

use super::{NgramError, Result, TOKEN_BITS};

/// A mask of the low `tokens` tokens of a key.
pub(super) fn key_mask(tokens: usize) -> u64 {
    if tokens == 0 {
        0
    } else {
        u64::MAX >> (64 - TOKEN_BITS as usize * tokens)
    }
}

/// The key of `m` start tokens.
pub(super) fn start_key(m: usize, vocab_size: u32) -> u64 {
    (0..m).fold(0, |k, _| push_key(k, vocab_size, m))
}

/// Shifts `t` into a key of the last `m` tokens (oldest in the high bits).
#[inline]
pub(super) fn push_key(key: u64, t: u32, m: usize) -> u64 {
    ((key << TOKEN_BITS) | u64::from(t)) & key_mask(m)
}

/// An error naming the first token at or above `vocab_size`.
pub(super) fn check_tokens(tokens: &[u32], vocab_size: u32) -> Result<()> {
    match tokens.iter().find(|&&t| t >= vocab_size) {
        Some(&token) => Err(NgramError::TokenOutOfVocabulary { token, vocab_size }),
        None => Ok(()),
    }
}

/// The hasher of the tables' key indexes.
pub(super) type KeyHash = BuildHasherDefault<KeyHasher>;

/// Multiplicative hash for packed keys: the keys are already well spread, SipHash's DoS
/// resistance buys nothing here and costs most of a lookup.
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, x: u64) {
        let h = (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 = h ^ (h >> 32);
    }
}
