//! The radioactivity experiment: does a model trained on our watermarked outputs carry the
//! watermark, and does the audit stay silent on one that was not?
//!
//! A teacher (the default model) answers prompts with and without the watermark; students
//! (n-gram models, [`crate::ngram`]) are trained on mixes in which a fraction ρ of the answers
//! is watermarked; each student is audited by [`watermark_core::Audit`] from its outputs
//! (closed model) and from its predictions over our texts (reading mode). The pieces here are
//! model-free so that the tests can run them on a synthetic teacher; [`teacher`] adds the real
//! model and the on-disk cache, and `src/bin/radioactivity.rs` (`make radioactivity`) runs it all.

pub mod anchor;
mod audits;
pub mod gumbel;
mod null_check;
pub mod prompts;
mod setup;
mod students;
pub mod teacher;

pub use audits::{audit_outputs, audit_reading, closed_under_keys, window_filter};
pub use null_check::{null_table, NullCheck};
pub use setup::{PromptSets, TeacherSettings};
pub use students::{student_answers, student_predictions, train_student};

use serde::{Deserialize, Serialize};
use watermark_core::splitmix;

use crate::corpus::CorpusError;
use crate::ngram::NgramError;

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
    /// The human-text corpus the prompts come from.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// Reading or writing the cache.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A cache file that is not the JSON expected.
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
}
