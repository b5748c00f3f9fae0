//! Edits applied to watermarked token sequences, and the rank statistics used to score them.
//!
//! Edits work on token ids, not text: an edit rate then means exactly that share of tokens, and
//! no re-tokenization blurs it.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A token-level edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Each token replaced by a uniformly random one with probability `rate`.
    Substitute,
    /// Each token removed with probability `rate`.
    Delete,
    /// A uniformly random token inserted after each token with probability `rate`.
    Insert,
}

impl Edit {
    pub const ALL: [Edit; 3] = [Edit::Substitute, Edit::Delete, Edit::Insert];

    pub fn name(self) -> &'static str {
        match self {
            Edit::Substitute => "substitution",
            Edit::Delete => "deletion",
            Edit::Insert => "insertion",
        }
    }
}

/// A uniform draw in [0, 1) from 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `tokens` after `edit` at `rate`, random tokens drawn from `0..vocab`; reproducible from
/// `seed`.
pub fn apply_edit(tokens: &[u32], edit: Edit, rate: f64, vocab: u32, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let random_token = |rng: &mut ChaCha8Rng| (rng.next_u64() % u64::from(vocab.max(1))) as u32;
    let mut out = Vec::with_capacity(tokens.len() + tokens.len() / 2);
    for &t in tokens {
        let hit = unit(&mut rng) < rate;
        match (edit, hit) {
            (Edit::Substitute, true) => out.push(random_token(&mut rng)),
            (Edit::Delete, true) => {}
            (Edit::Insert, true) => {
                out.push(t);
                out.push(random_token(&mut rng));
            }
            (_, false) => out.push(t),
        }
    }
    out
}

/// `passage` pasted into `host` at a position drawn from `seed`.
pub fn paste(host: &[u32], passage: &[u32], seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let at = (rng.next_u64() % (host.len() as u64 + 1)) as usize;
    let mut out = Vec::with_capacity(host.len() + passage.len());
    out.extend_from_slice(&host[..at]);
    out.extend_from_slice(passage);
    out.extend_from_slice(&host[at..]);
    out
}

/// Area under the ROC curve of scores where higher means "watermarked": the probability that a
/// random positive outscores a random negative, ties counting half (Mann–Whitney). NaN when
/// either side is empty.
pub fn auc(positives: &[f64], negatives: &[f64]) -> f64 {
    if positives.is_empty() || negatives.is_empty() {
        return f64::NAN;
    }
    let mut wins = 0.0;
    for &p in positives {
        for &n in negatives {
            wins += if p > n {
                1.0
            } else if p == n {
                0.5
            } else {
                0.0
            };
        }
    }
    wins / (positives.len() * negatives.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_rates_are_what_they_say() {
        let tokens: Vec<u32> = (0..20_000).collect();
        let sub = apply_edit(&tokens, Edit::Substitute, 0.2, 1_000_000, 1);
        let changed = sub.iter().zip(&tokens).filter(|(a, b)| a != b).count();
        // 20,000 draws at 0.2: sd 57; 5 sd either side.
        assert!((3715..=4285).contains(&changed), "{changed}");
        let del = apply_edit(&tokens, Edit::Delete, 0.1, 10, 2);
        assert!((1788..=2212).contains(&(tokens.len() - del.len())));
        let ins = apply_edit(&tokens, Edit::Insert, 0.3, 10, 3);
        assert!((5675..=6325).contains(&(ins.len() - tokens.len())));
        assert_eq!(apply_edit(&tokens, Edit::Delete, 0.0, 10, 4), tokens);
    }

    #[test]
    fn paste_keeps_both_parts_in_order() {
        let host = [1, 2, 3, 4];
        let out = paste(&host, &[9, 9], 7);
        assert_eq!(out.len(), 6);
        let at = out.iter().position(|t| *t == 9).unwrap();
        assert_eq!(&out[at..at + 2], &[9, 9]);
        let rest: Vec<u32> = out.iter().copied().filter(|t| *t != 9).collect();
        assert_eq!(rest, host);
    }

    #[test]
    fn auc_of_separated_tied_and_reversed_scores() {
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), 1.0);
        assert_eq!(auc(&[1.0], &[1.0]), 0.5);
        assert_eq!(auc(&[1.0, 2.0], &[3.0]), 0.0);
        assert!(auc(&[], &[1.0]).is_nan());
    }
}
