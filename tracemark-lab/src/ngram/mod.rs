//! An interpolated Kneser–Ney n-gram language model over token ids: the student of the
//! radioactivity experiment.
//!
//! A watermark of window width `w` biases the next token given the previous `w` tokens. An
//! n-gram model of order `w + 1` stores exactly those conditional counts, so it inherits the bias
//! as directly as any model can — and it trains on a few hundred thousand tokens in well under a
//! second on one core, where a neural student would need hours on this machine.
//!
//! Smoothing is interpolated modified Kneser–Ney (Chen & Goodman, 1998): at every order the
//! counts are discounted by `D1`, `D2` or `D3+` (estimated from the counts of counts) and the
//! freed mass goes to the next lower order; lower orders count *continuations* (how many
//! distinct tokens precede an n-gram) rather than occurrences; the lowest order backs off to the
//! uniform distribution, so every token has a non-zero probability. Sequences are padded on the
//! left with a virtual start token (id `vocab_size`, never predicted), so every token is counted
//! with a full context.
//!
//! Every distribution is a mixture of a few sparse follower lists and one dense unigram vector,
//! which is what makes prediction and sampling cost O(followers) rather than O(vocabulary).
//!
//! ```
//! use tracemark_lab::ngram::{NgramConfig, NgramModel, NgramSampler};
//!
//! # fn main() -> tracemark_lab::ngram::Result<()> {
//! let text = [1u32, 2, 3, 1, 2, 3, 1, 2, 4];
//! let model = NgramModel::train(10, NgramConfig::default(), [&text[..]])?;
//! assert_eq!(model.predict(&[1, 2])?, 3); // seen twice after (1, 2), against once for 4
//! let mut sampler = NgramSampler::new(&model, 1.0, 7)?;
//! let continuation = sampler.generate(&[1], 5, &[])?;
//! assert_eq!(continuation.len(), 5);
//! # Ok(())
//! # }
//! ```

mod key;
mod model;
mod sample;
mod train;

pub use model::NgramModel;
pub use sample::NgramSampler;
pub use train::NgramTrainer;

/// Bits per token in a packed context key.
const TOKEN_BITS: u32 = 21;

/// Largest order: its context of `MAX_ORDER - 1` tokens fits in one 64-bit key.
pub const MAX_ORDER: usize = 4;

/// Largest vocabulary: ids and the start token must fit in [`TOKEN_BITS`] bits.
pub const MAX_VOCAB_SIZE: u32 = (1 << TOKEN_BITS) - 1;

/// What can go wrong building or querying a model.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NgramError {
    /// The order is outside `1..=MAX_ORDER`.
    #[error("order {0} is outside 1..={MAX_ORDER}")]
    InvalidOrder(usize),
    /// The vocabulary size is zero or too large to pack.
    #[error("vocabulary size {0} is outside 1..={MAX_VOCAB_SIZE}")]
    InvalidVocabSize(u32),
    /// A token id at or above the vocabulary size.
    #[error("token {token} is outside the vocabulary of {vocab_size}")]
    TokenOutOfVocabulary {
        /// The offending id.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: u32,
    },
    /// A fixed discount outside (0, 1].
    #[error("discount {0} must lie in (0, 1]")]
    InvalidDiscount(f64),
    /// A temperature that is negative or not finite.
    #[error("temperature {0} must be finite and >= 0")]
    InvalidTemperature(f64),
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, NgramError>;

/// How counts are discounted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Discount {
    /// Modified Kneser–Ney: three discounts per order, estimated from the counts of counts
    /// (falling back to 0.75 for an order with too little data to estimate them).
    Modified,
    /// One discount for every count and order (plain interpolated Kneser–Ney).
    Fixed(f64),
}

/// The model's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NgramConfig {
    /// Tokens per n-gram, `1..=MAX_ORDER`: the prediction sees the previous `order - 1`.
    pub order: usize,
    /// Count discounting.
    pub discount: Discount,
}

impl Default for NgramConfig {
    /// Order 3 (two tokens of context, the default watermark window), modified discounts.
    fn default() -> Self {
        NgramConfig {
            order: 3,
            discount: Discount::Modified,
        }
    }
}

impl NgramConfig {
    fn validate(&self) -> Result<()> {
        if !(1..=MAX_ORDER).contains(&self.order) {
            return Err(NgramError::InvalidOrder(self.order));
        }
        if let Discount::Fixed(d) = self.discount {
            if !(d > 0.0 && d <= 1.0) {
                return Err(NgramError::InvalidDiscount(d));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A small corpus with repeated structure over a vocabulary of 50.
    fn corpus() -> Vec<Vec<u32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        (0..40)
            .map(|_| {
                let mut s = Vec::new();
                let mut prev = 0u32;
                for _ in 0..60 {
                    let r = rng.next_u32();
                    // Mostly a deterministic successor, sometimes a random token.
                    let t = if r % 4 == 0 {
                        r % 50
                    } else {
                        (prev * 7 + 3) % 50
                    };
                    s.push(t);
                    prev = t;
                }
                s
            })
            .collect()
    }

    fn model(order: usize, discount: Discount) -> NgramModel {
        let c = corpus();
        NgramModel::train(
            50,
            NgramConfig { order, discount },
            c.iter().map(|s| &s[..]),
        )
        .unwrap()
    }

    #[test]
    fn distributions_sum_to_one_and_match_point_queries() {
        for order in 1..=4 {
            for discount in [Discount::Modified, Discount::Fixed(0.4)] {
                let m = model(order, discount);
                for history in [
                    &[][..],
                    &[3],
                    &[3, 24],
                    &[1, 3, 24],
                    &[49, 49, 49],
                    &[7, 0, 3],
                ] {
                    let p = m.distribution(history).unwrap();
                    let sum: f64 = p.iter().sum();
                    assert!((sum - 1.0).abs() < 1e-9, "order {order} {history:?}: {sum}");
                    assert!(p.iter().all(|&x| x > 0.0));
                    for w in [0u32, 3, 24, 49] {
                        let q = m.probability(history, w).unwrap();
                        assert!((q - p[w as usize]).abs() < 1e-12);
                    }
                    let best = m.predict(history).unwrap();
                    let max = p.iter().copied().fold(0.0, f64::max);
                    assert_eq!(p[best as usize], max);
                }
            }
        }
    }

    #[test]
    fn an_unseen_context_backs_off_to_the_lower_order() {
        // Tokens 40..50 never occur twice in a row with this prefix: (45, 46) is unseen.
        let m =
            NgramModel::train(50, NgramConfig::default(), [&[1u32, 2, 3, 1, 2, 4][..]]).unwrap();
        let unigram = m.distribution(&[45, 46]).unwrap();
        assert_eq!(unigram, m.distribution(&[46]).unwrap());
        // (45, 2) is unseen but (2) is seen: exactly the bigram distribution after 2 (whose
        // start-padded trigram context is unseen too), which prefers 3 and 4.
        let bigram = m.distribution(&[45, 2]).unwrap();
        assert_eq!(bigram, m.distribution(&[2]).unwrap());
        assert!(bigram[3] > 2.0 * unigram[3] && bigram[4] > 2.0 * unigram[4]);
        // The seen trigram context (1, 2) is sharper still than the bigram.
        let trigram = m.distribution(&[1, 2]).unwrap();
        assert!(trigram[3] + trigram[4] > bigram[3] + bigram[4]);
    }

    #[test]
    fn lower_orders_count_continuations_not_occurrences() {
        // Token 9 occurs often but only after 8; token 5 occurs as often after many tokens.
        let mut s = Vec::new();
        for i in 0..20u32 {
            s.extend([8, 9, 10 + i % 10, 5]);
        }
        let m = NgramModel::train(40, NgramConfig::default(), [&s[..]]).unwrap();
        // In a context never seen, 5 (many predecessors) beats 9 (one predecessor).
        let p = m.distribution(&[30, 31]).unwrap();
        assert!(p[5] > 2.0 * p[9], "{} vs {}", p[5], p[9]);
        // After 8, 9 is near certain.
        assert!(m.probability(&[8], 9).unwrap() > 0.5);
    }

    #[test]
    fn sampling_is_deterministic_with_a_seed_and_follows_the_distribution() {
        let m = model(3, Discount::Modified);
        for temperature in [1.0, 0.7] {
            let a = NgramSampler::new(&m, temperature, 11)
                .unwrap()
                .generate(&[3], 300, &[])
                .unwrap();
            let b = NgramSampler::new(&m, temperature, 11)
                .unwrap()
                .generate(&[3], 300, &[])
                .unwrap();
            let c = NgramSampler::new(&m, temperature, 12)
                .unwrap()
                .generate(&[3], 300, &[])
                .unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
            // A reseeded sampler draws what a new one with that seed draws.
            let mut reused = NgramSampler::new(&m, temperature, 99).unwrap();
            reused.generate(&[5], 50, &[]).unwrap();
            reused.reseed(12);
            assert_eq!(reused.generate(&[3], 300, &[]).unwrap(), c);
        }
        // Empirical frequencies after a fixed history match P (at T = 1) and P^2 normalised
        // (at T = 0.5), within 5 standard errors.
        for temperature in [1.0, 0.5] {
            let mut s = NgramSampler::new(&m, temperature, 5).unwrap();
            let history = [3u32, 24];
            let p = m.distribution(&history).unwrap();
            let w: Vec<f64> = p.iter().map(|x| x.powf(1.0 / temperature)).collect();
            let z: f64 = w.iter().sum();
            let n = 20_000;
            let mut freq = [0u32; 50];
            for _ in 0..n {
                freq[s.sample(&history).unwrap() as usize] += 1;
            }
            for t in 0..50 {
                let q = w[t] / z;
                let se = (q * (1.0 - q) / n as f64).sqrt();
                let f = f64::from(freq[t]) / n as f64;
                assert!(
                    (f - q).abs() < 5.0 * se + 1e-4,
                    "T={temperature} token {t}: {f} vs {q}"
                );
            }
        }
        // Temperature 0 is greedy.
        let g = NgramSampler::new(&m, 0.0, 1)
            .unwrap()
            .generate(&[3], 5, &[])
            .unwrap();
        let mut h = vec![3u32];
        for &t in &g {
            assert_eq!(t, m.predict(&h).unwrap());
            h.push(t);
        }
    }

    #[test]
    fn generation_stops_before_a_stop_token() {
        let s: Vec<u32> = [1, 2, 3, 4].repeat(10);
        let m = NgramModel::train(5, NgramConfig::default(), [&s[..]]).unwrap();
        let out = NgramSampler::new(&m, 0.0, 0)
            .unwrap()
            .generate(&[1, 2], 50, &[4])
            .unwrap();
        assert_eq!(out, vec![3]);
    }

    #[test]
    fn predictions_read_a_text_position_by_position() {
        let m = model(3, Discount::Modified);
        let prompt = [5u32, 9];
        let text = [3u32, 24, 7, 0, 3];
        let all = m.predictions(&prompt, &text).unwrap();
        for i in 0..text.len() {
            let history: Vec<u32> = prompt.iter().chain(&text[..i]).copied().collect();
            assert_eq!(all[i], m.predict(&history).unwrap());
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            NgramTrainer::new(
                10,
                NgramConfig {
                    order: 5,
                    discount: Discount::Modified
                }
            )
            .unwrap_err(),
            NgramError::InvalidOrder(5)
        );
        let m = model(2, Discount::Modified);
        assert!(matches!(
            m.predict(&[50]),
            Err(NgramError::TokenOutOfVocabulary {
                token: 50,
                vocab_size: 50
            })
        ));
        assert!(NgramSampler::new(&m, -1.0, 0).is_err());
        assert!(NgramTrainer::new(
            10,
            NgramConfig {
                order: 3,
                discount: Discount::Fixed(1.5)
            }
        )
        .is_err());
    }
}
