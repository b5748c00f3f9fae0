//! A synthetic language model: deterministic logits that depend on the previous token, with a
//! tunable entropy. It stands in for a real model in demos, power tests and benchmarks where
//! what matters is a known next-token distribution, not language.

/// Logits over `vocab_size` tokens: `sharpness` times a Gumbel variate drawn from a hash of
/// (seed, previous token, candidate). Larger `sharpness` means lower entropy.
#[derive(Clone, Debug)]
pub struct SyntheticLm {
    vocab_size: u32,
    sharpness: f32,
    seed: u64,
}

impl SyntheticLm {
    /// A model over `vocab_size` tokens (at least 2).
    pub fn new(vocab_size: u32, sharpness: f32, seed: u64) -> Self {
        SyntheticLm {
            vocab_size: vocab_size.max(2),
            sharpness,
            seed,
        }
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The next-token logits after `context`.
    pub fn logits(&self, context: &[u32]) -> Vec<f32> {
        let prev = context.last().map_or(u64::MAX, |&t| u64::from(t));
        let row_seed = splitmix(self.seed ^ splitmix(prev));
        (0..self.vocab_size)
            .map(|t| {
                let h = splitmix(row_seed ^ u64::from(t).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                // Uniform in (0, 1), then a standard Gumbel variate.
                let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                (f64::from(self.sharpness) * -(-u.ln()).ln()) as f32
            })
            .collect()
    }

    /// Softmax of [`SyntheticLm::logits`], for computing entropies.
    pub fn probabilities(&self, context: &[u32]) -> Vec<f64> {
        softmax(&self.logits(context))
    }
}

/// Softmax in f64 (for statistics on a distribution, not for sampling speed).
pub fn softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let w: Vec<f64> = logits.iter().map(|&x| f64::from(x - max).exp()).collect();
    let total: f64 = w.iter().sum();
    w.into_iter().map(|x| x / total).collect()
}

/// SplitMix64's output function: a cheap, well-mixed hash of a counter, for seeded experiments
/// (never for anything keyed).
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_context_dependent() {
        let lm = SyntheticLm::new(100, 1.0, 5);
        assert_eq!(lm.logits(&[3]), lm.logits(&[9, 3]));
        assert_ne!(lm.logits(&[3]), lm.logits(&[4]));
        let p = lm.probabilities(&[3]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
