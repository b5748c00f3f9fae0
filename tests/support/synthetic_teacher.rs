//! The synthetic teacher of the radioactivity tests (tests/radioactivity.rs with n-gram students,
//! tests/radioactivity_neural.rs with neural ones): a bigram [`SyntheticLm`] answering random
//! prompts, with or without the watermark. Included by `#[path]`, not through `support`, because
//! the model crates' tests do not depend on tracemark-lab.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tracemark_lab::keys::Experiment;
use tracemark_lab::radioactivity::Sample;
use watermark_core::SyntheticLm;
use watermark_core::{GreenList, Scheme};

pub const VOCAB: u32 = 1000;
pub const PROMPT_LEN: usize = 8;
pub const ANSWER_LEN: usize = 60;

pub fn scheme() -> Scheme {
    Scheme {
        delta: 3.0,
        ..Scheme::default()
    }
}

pub fn green(index: u64) -> GreenList {
    GreenList::new(&Experiment::Radioactivity.key(99, index), scheme(), VOCAB).unwrap()
}

/// The teacher's next-token distribution after each previous token (it is a bigram model),
/// as cumulative sums, computed once.
pub fn teacher() -> &'static [Vec<f64>] {
    static TABLE: OnceLock<Vec<Vec<f64>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let lm = SyntheticLm::new(VOCAB, 2.0, 17);
        (0..VOCAB)
            .map(|prev| {
                let mut acc = 0.0;
                lm.probabilities(&[prev])
                    .into_iter()
                    .map(|p| {
                        acc += p;
                        acc
                    })
                    .collect()
            })
            .collect()
    })
}

pub fn prompts(n: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..PROMPT_LEN).map(|_| rng.next_u32() % VOCAB).collect())
        .collect()
}

pub fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The synthetic teacher's answers, watermarked under `green` when given.
///
/// Watermarked tokens are drawn by rejection, which is exact and much cheaper unoptimized than
/// biasing the whole row: propose from the teacher's distribution q, accept a green token
/// always and a red one with probability e^-δ; accepted tokens follow q·e^(δ·green), the
/// watermarked distribution (what `WatermarkSampler` samples from the biased logits).
pub fn answers(green: Option<&GreenList>, prompts: &[Vec<u32>], seed: u64) -> Vec<Sample> {
    let table = teacher();
    let keep_red = (-f64::from(scheme().delta)).exp();
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed + i as u64);
            let mut context = p.clone();
            for _ in 0..ANSWER_LEN {
                let cdf = &table[*context.last().unwrap() as usize];
                let token = loop {
                    let u = uniform(&mut rng) * cdf[cdf.len() - 1];
                    let t = cdf.partition_point(|&c| c <= u).min(cdf.len() - 1) as u32;
                    let accept = match green {
                        None => true,
                        Some(g) => {
                            g.is_green(&context, t).unwrap().unwrap()
                                || uniform(&mut rng) < keep_red
                        }
                    };
                    if accept {
                        break t;
                    }
                };
                context.push(token);
            }
            Sample {
                prompt_ids: p.clone(),
                response_ids: context[p.len()..].to_vec(),
            }
        })
        .collect()
}
