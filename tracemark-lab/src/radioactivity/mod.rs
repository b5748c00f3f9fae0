//! The radioactivity experiment: does a model trained on our watermarked outputs carry the
//! watermark, and does the audit stay silent on one that was not?
//!
//! A teacher (the default model) answers prompts with and without the watermark; students
//! (n-gram models, [`crate::ngram`]) are trained on mixes in which a fraction ρ of the answers
//! is watermarked; each student is audited by [`watermark_core::Audit`] from its outputs
//! (closed model) and from its predictions over our texts (reading mode). The pieces here are
//! model-free so that the tests can run them on a synthetic teacher; [`teacher`] adds the real
//! model and the on-disk cache, and `src/bin/radioactivity.rs` (`make radioactivity`) runs it all.

pub mod prompts;
pub mod teacher;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use watermark_core::{stats, GreenList, SecretKey};
use watermark_core::{Audit, AuditOptions, AuditReport, WindowFilter};

use crate::ngram::{NgramConfig, NgramError, NgramModel, NgramSampler, NgramTrainer};

/// What can go wrong in the experiment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The watermark library refused an input.
    #[error(transparent)]
    Watermark(#[from] watermark_core::Error),
    /// The student refused an input.
    #[error(transparent)]
    Ngram(#[from] NgramError),
    /// The default model failed.
    #[error(transparent)]
    Model(#[from] tracemark_model::Error),
    /// Reading or writing the cache or the corpus.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A cache or corpus line that is not the JSON expected.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// What failed.
        source: serde_json::Error,
    },
    /// The corpus gave fewer prompts than asked for.
    #[error("the corpus gives {found} distinct prompts, {wanted} are needed")]
    NotEnoughPrompts {
        /// Prompts available.
        found: usize,
        /// Prompts asked for.
        wanted: usize,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// One prompt and its answer, as token ids (the prompt chat-formatted, the answer without its
/// stop token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// What the model read.
    pub prompt_ids: Vec<u32>,
    /// What it wrote.
    pub response_ids: Vec<u32>,
}

/// The experiment's keys, derived from a public seed so that a run, and its cache, can be
/// reproduced. A real deployment draws its key with `tracemark keygen`; reports show only the
/// fingerprint either way.
pub fn experiment_key(seed: u64, index: u64) -> SecretKey {
    let mut h = Sha256::new();
    h.update(b"tracemark radioactivity experiment key");
    h.update(seed.to_le_bytes());
    h.update(index.to_le_bytes());
    SecretKey::from_bytes(h.finalize().into())
}

/// Which of `n` training answers are watermarked at each fraction: the first `round(ρ n)` of
/// one seeded permutation, so the watermarked set of a smaller ρ is inside that of a larger one
/// and students differ only in ρ.
pub fn watermarked_share(n: usize, rho: f64, seed: u64) -> Vec<bool> {
    let order = permutation(n, seed);
    let k = ((rho.clamp(0.0, 1.0) * n as f64).round() as usize).min(n);
    let mut marked = vec![false; n];
    for &i in &order[..k] {
        marked[i] = true;
    }
    marked
}

/// A seeded permutation of `0..n` (Fisher–Yates on splitmix64).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut state = seed ^ 0x005e_ed0f_7ad1_0ac7;
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        state = splitmix(state);
        let j = (state % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A student trained on `samples` (prompt, answer, then `stop` when given, so that it learns to
/// end its answers).
pub fn train_student(
    vocab_size: u32,
    config: NgramConfig,
    samples: &[&Sample],
    stop: Option<u32>,
) -> Result<NgramModel> {
    let mut trainer = NgramTrainer::new(vocab_size, config)?;
    let mut seq = Vec::new();
    for s in samples {
        seq.clear();
        seq.extend_from_slice(&s.prompt_ids);
        seq.extend_from_slice(&s.response_ids);
        seq.extend(stop);
        trainer.add_sequence(&seq)?;
    }
    Ok(trainer.build())
}

/// The student's answers to `prompts` (token ids), answer `i` drawn with seed `seed + i`.
pub fn student_answers(
    student: &NgramModel,
    prompts: &[Vec<u32>],
    max_tokens: usize,
    temperature: f64,
    seed: u64,
    stop: &[u32],
) -> Result<Vec<Sample>> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut sampler = NgramSampler::new(student, temperature, seed.wrapping_add(i as u64))?;
            Ok(Sample {
                prompt_ids: p.clone(),
                response_ids: sampler.generate(p, max_tokens, stop)?,
            })
        })
        .collect()
}

/// A filter of the windows of `ours` (our watermarked outputs), for a supervised audit.
pub fn window_filter(green: &GreenList, ours: &[&Sample]) -> Result<WindowFilter> {
    let mut filter = WindowFilter::new(green);
    for s in ours {
        filter.add_text(&s.prompt_ids, &s.response_ids)?;
    }
    Ok(filter)
}

/// An empty audit under `green`, supervised when `filter` is given.
fn new_audit(
    green: &GreenList,
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<Audit> {
    let audit = Audit::new(green.clone(), options.clone())?;
    Ok(match filter {
        Some(f) => audit.with_filter(f)?,
        None => audit,
    })
}

/// Closed-model audit of a suspect's outputs; supervised when `filter` is given.
pub fn audit_outputs(
    green: &GreenList,
    outputs: &[Sample],
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<AuditReport> {
    let mut audit = new_audit(green, filter, options)?;
    for s in outputs {
        audit.add_output(&s.prompt_ids, &s.response_ids)?;
    }
    Ok(audit.report())
}

/// Reading-mode audit: `predictions[j][i]` is the suspect's top-1 for position `i` of
/// `texts[j]`'s response, read after its prompt.
pub fn audit_reading(
    green: &GreenList,
    texts: &[&Sample],
    predictions: &[Vec<u32>],
    filter: Option<WindowFilter>,
    options: &AuditOptions,
) -> Result<AuditReport> {
    let mut audit = new_audit(green, filter, options)?;
    for (s, p) in texts.iter().zip(predictions) {
        audit.add_reading(&s.prompt_ids, &s.response_ids, p)?;
    }
    Ok(audit.report())
}

/// An n-gram student's reading-mode predictions over `texts`.
pub fn student_predictions(student: &NgramModel, texts: &[&Sample]) -> Result<Vec<Vec<u32>>> {
    texts
        .iter()
        .map(|s| Ok(student.predictions(&s.prompt_ids, &s.response_ids)?))
        .collect()
}

/// Calibration of p-values that should be uniform (one per key): the KS test of uniformity and
/// the false-positive rate at two levels with exact (Clopper–Pearson) intervals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NullCheck {
    /// Keys audited.
    pub keys: usize,
    /// Mean p-value (0.5 under the null for continuous p-values; a little above for exact
    /// binomial ones, which are conservative).
    pub mean_p: f64,
    /// Kolmogorov–Smirnov p-value of uniformity (two-sided: exact binomial p-values of small
    /// counts are discrete and conservative, which this also detects).
    pub ks_p: f64,
    /// One-sided KS p-value against an excess of small p-values (the false-positive side):
    /// P(D+ ≥ d) ≈ exp(−2 n d²), with D+ the largest excess of the empirical CDF over the
    /// uniform one.
    pub ks_excess_p: f64,
    /// Keys with p ≤ 0.05.
    pub flagged_05: u64,
    /// 95% interval of the false-positive rate at 0.05.
    pub ci_05: (f64, f64),
    /// Keys with p ≤ 0.01.
    pub flagged_01: u64,
    /// 95% interval of the false-positive rate at 0.01.
    pub ci_01: (f64, f64),
    /// The smallest log10 p over the keys.
    pub min_log10_p: f64,
}

impl NullCheck {
    /// Summarises one log10 p-value per key.
    pub fn from_log10_p(log10_p: &[f64]) -> Self {
        let p: Vec<f64> = log10_p.iter().map(|&l| stats::p_from_log10(l)).collect();
        let n = p.len() as u64;
        let flagged = |alpha: f64| p.iter().filter(|&&x| x <= alpha).count() as u64;
        let (flagged_05, flagged_01) = (flagged(0.05), flagged(0.01));
        NullCheck {
            keys: p.len(),
            mean_p: p.iter().sum::<f64>() / p.len().max(1) as f64,
            ks_p: stats::ks_uniform(&p).1,
            ks_excess_p: ks_excess(&p),
            flagged_05,
            ci_05: stats::clopper_pearson(flagged_05, n, 0.05),
            flagged_01,
            ci_01: stats::clopper_pearson(flagged_01, n, 0.05),
            min_log10_p: log10_p.iter().copied().fold(f64::INFINITY, f64::min),
        }
    }

    /// Whether the nominal rates lie in both intervals and the KS test does not reject at 1%.
    pub fn calibrated(&self) -> bool {
        self.ks_p > 0.01
            && (self.ci_05.0..=self.ci_05.1).contains(&0.05)
            && (self.ci_01.0..=self.ci_01.1).contains(&0.01)
    }

    /// Whether the p-values show more false positives than nominal: a rate interval entirely
    /// above its level, or the one-sided KS test rejecting at 1%.
    pub fn excess_false_positives(&self) -> bool {
        self.ci_05.0 > 0.05 || self.ci_01.0 > 0.01 || self.ks_excess_p < 0.01
    }

    /// One word for a table: `ok`, `conservative` (p-values too large, never a false alarm), or
    /// `FALSE+` (too many small p-values).
    pub fn verdict(&self) -> &'static str {
        if self.excess_false_positives() {
            "FALSE+"
        } else if self.calibrated() {
            "ok"
        } else {
            "conservative"
        }
    }
}

fn ks_excess(p: &[f64]) -> f64 {
    if p.is_empty() {
        return 1.0;
    }
    let mut xs = p.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    let d = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| (i + 1) as f64 / n - x.clamp(0.0, 1.0))
        .fold(0.0, f64::max);
    (-2.0 * n * d * d).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_nested_and_sized() {
        let a = watermarked_share(1000, 0.01, 3);
        let b = watermarked_share(1000, 0.10, 3);
        assert_eq!(a.iter().filter(|&&x| x).count(), 10);
        assert_eq!(b.iter().filter(|&&x| x).count(), 100);
        assert!(a.iter().zip(&b).all(|(&x, &y)| !x || y));
        assert!(watermarked_share(10, 1.0, 0).iter().all(|&x| x));
        assert!(!watermarked_share(10, 0.0, 0).iter().any(|&x| x));
    }

    #[test]
    fn keys_are_reproducible_and_distinct() {
        assert_eq!(
            experiment_key(1, 0).fingerprint(),
            experiment_key(1, 0).fingerprint()
        );
        assert_ne!(
            experiment_key(1, 0).fingerprint(),
            experiment_key(1, 1).fingerprint()
        );
    }

    #[test]
    fn null_check_counts_and_bounds() {
        let l: Vec<f64> = (1..=20).map(|i| (i as f64 / 20.0).log10()).collect();
        let c = NullCheck::from_log10_p(&l);
        assert_eq!(c.keys, 20);
        assert_eq!(c.flagged_05, 1);
        assert_eq!(c.flagged_01, 0);
        assert!(c.calibrated());
        assert_eq!(c.verdict(), "ok");
        let bad = NullCheck::from_log10_p(&[-8.0; 20]);
        assert!(!bad.calibrated());
        assert_eq!(bad.verdict(), "FALSE+");
        let conservative = NullCheck::from_log10_p(&[-0.01; 20]);
        assert_eq!(conservative.verdict(), "conservative");
    }
}
