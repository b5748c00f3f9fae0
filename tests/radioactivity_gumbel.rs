//! Radioactivity of vLLM's native watermark (`vllm-gumbel-philox-v1`) on the synthetic teacher of
//! `tests/radioactivity.rs`: the teacher samples by keyed Gumbel-max (vLLM's PRF over the last two
//! generated tokens, repeated contexts sampled plainly), n-gram students learn from its answers,
//! and the closed-model audit pools the students' answers into one Gamma test. Fixed seeds, and
//! thresholds from stated confidence levels:
//! - power: the student of 100% Gumbel-watermarked answers is flagged at p < 1e-6;
//! - null: the student of unwatermarked answers, audited under `KEYS` vLLM keys, gives p-values
//!   the Kolmogorov–Smirnov test does not reject at level 0.001, no more p ≤ 0.05 than the 0.999
//!   quantile of Binomial(KEYS, 0.05), and none below 1e-6.

#![allow(clippy::unwrap_used)]

#[path = "support/synthetic_teacher.rs"]
mod synthetic_teacher;

use synthetic_teacher::{prompts, teacher, uniform, ANSWER_LEN, VOCAB};

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tracemark_lab::ngram::{NgramConfig, NgramModel};
use tracemark_lab::radioactivity::gumbel::{audit_outputs_gumbel, GumbelAnswer};
use tracemark_lab::radioactivity::{student_answers, train_student, NullCheck, Sample};
use watermark_core::stats;

/// vLLM context width of the teacher, and the student's context (a trigram sees it all).
const WIDTH: usize = 2;
/// Keys of the null check.
const KEYS: usize = 40;

/// The teacher's answers: Gumbel-max under `key` when given, plain sampling otherwise.
fn gumbel_answers(key: Option<u64>, prompts: &[Vec<u32>], seed: u64) -> Vec<Sample> {
    let table = teacher();
    // The teacher's probabilities after each token, from its cumulative sums.
    let row = |prev: u32| -> Vec<f64> {
        let cdf = &table[prev as usize];
        (0..cdf.len())
            .map(|i| cdf[i] - if i == 0 { 0.0 } else { cdf[i - 1] })
            .collect()
    };
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed + i as u64);
            let mut answer = key.map(|k| GumbelAnswer::new(k, WIDTH).unwrap());
            let mut prev = *p.last().unwrap();
            let mut response = Vec::with_capacity(ANSWER_LEN);
            for _ in 0..ANSWER_LEN {
                let probabilities = row(prev);
                let r = uniform(&mut rng);
                prev = match answer.as_mut() {
                    Some(a) => a.next(&probabilities, r).unwrap(),
                    None => tracemark_lab::radioactivity::gumbel::sample_plain(&probabilities, r)
                        .unwrap(),
                };
                response.push(prev);
            }
            Sample {
                prompt_ids: p.clone(),
                response_ids: response,
            }
        })
        .collect()
}

fn student(training: &[Sample]) -> NgramModel {
    let refs: Vec<&Sample> = training.iter().collect();
    train_student(VOCAB, NgramConfig::default(), &refs, None).unwrap()
}

#[test]
fn a_student_of_gumbel_answers_is_flagged_and_an_innocent_one_is_not() {
    let key = 0x7A11_5EED_0000_0001;
    let training = prompts(300, 1);
    let held_out = prompts(100, 2);

    let marked = student(&gumbel_answers(Some(key), &training, 1000));
    let outputs = student_answers(&marked, &held_out, ANSWER_LEN, 0.7, 5, &[]).unwrap();
    let closed = audit_outputs_gumbel(key, WIDTH, &outputs).unwrap();
    eprintln!("watermarked student: {closed:?}");
    assert!(closed.log10_p_value < -6.0, "{closed:?}");

    let innocent = student(&gumbel_answers(None, &training, 2000));
    let outputs = student_answers(&innocent, &held_out, ANSWER_LEN, 0.7, 5, &[]).unwrap();
    let log10_p: Vec<f64> = (1..=KEYS as u64)
        .map(|j| {
            let other = key ^ j.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let s = audit_outputs_gumbel(other, WIDTH, &outputs).unwrap();
            assert!(s.scored >= 100, "{s:?}");
            s.log10_p_value
        })
        .collect();
    let c = NullCheck::from_log10_p(&log10_p);
    eprintln!("innocent student: {c:?}");
    assert!(c.ks_p > 1e-3, "KS rejects uniformity: {c:?}");
    let critical = stats::binomial_critical_count(KEYS as u64, 0.05, 1e-3);
    assert!(c.flagged_05 < critical, "too many p ≤ 0.05: {c:?}");
    assert!(c.min_log10_p > -6.0, "a key flagged at 1e-6: {c:?}");
}
