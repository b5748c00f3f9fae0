//! One run's prompts, keys and sampling. The n-gram and the neural experiments both take them
//! from here, so that they ask the teacher the same questions with the same keys and seeds and
//! share its answer cache.

use tracemark_model::generate::GenerateOptions;
use watermark_core::{GreenList, Sampling, Scheme};

use super::prompts::prompts_from_texts;
use super::Result;
use crate::keys::Experiment;

/// Disjoint prompt sets from one seeded order of the corpus texts: training, held out (the
/// students' closed-model answers) and the null keys' texts. The first `train` prompts do not
/// depend on the other sizes, so runs of different held-out sizes share training answers.
#[derive(Clone, Debug)]
pub struct PromptSets {
    /// Prompts the teacher answers for the students' training.
    pub train: Vec<String>,
    /// Prompts the students answer.
    pub held_out: Vec<String>,
    /// Prompts the null keys' watermarked answers come from.
    pub null: Vec<String>,
}

impl PromptSets {
    /// `train`, `held_out` and `null` prompts from `texts`, in the order `seed` gives.
    pub fn from_texts(
        texts: &[String],
        train: usize,
        held_out: usize,
        null: usize,
        seed: u64,
    ) -> Result<Self> {
        let mut all = prompts_from_texts(texts, train + held_out + null, seed)?;
        let null = all.split_off(train + held_out);
        let held_out = all.split_off(train);
        Ok(PromptSets {
            train: all,
            held_out,
            null,
        })
    }
}

/// The teacher's watermark (γ = 0.25, window 2 over the previous tokens, bias `delta`, the key
/// of the run's seed) and its sampling (T = 1), for watermarked, plain and null-key answers.
#[derive(Clone, Debug)]
pub struct TeacherSettings {
    /// The watermark's scheme.
    pub scheme: Scheme,
    /// The run's key and scheme.
    pub green: GreenList,
    /// Sampling of the watermarked training answers (answer `i` seeded `i`).
    pub generate: GenerateOptions,
    /// Sampling of the plain training answers (seeds from 2^32).
    pub plain_generate: GenerateOptions,
    seed: u64,
    vocab: u32,
}

impl TeacherSettings {
    /// The settings of a run with `seed`, for a teacher of `vocab` tokens.
    pub fn new(
        delta: f32,
        max_tokens: usize,
        batch_size: usize,
        seed: u64,
        vocab: u32,
    ) -> Result<Self> {
        let scheme = Scheme {
            delta,
            ..Scheme::default()
        };
        let green = GreenList::new(
            &Experiment::Radioactivity.key(seed, 0),
            scheme.clone(),
            vocab,
        )?;
        let generate = GenerateOptions {
            max_tokens,
            min_tokens: 0,
            sampling: Sampling::new(1.0, None, None)?,
            seed: 0,
            batch_size,
        };
        let plain_generate = GenerateOptions {
            seed: 1 << 32,
            ..generate.clone()
        };
        Ok(TeacherSettings {
            scheme,
            green,
            generate,
            plain_generate,
            seed,
            vocab,
        })
    }

    /// Null key `j`'s green list (its own key, the same scheme) and the sampling of its answers
    /// (seeds from 2 · 2^32 + 1000 j).
    pub fn null_key(&self, j: usize) -> Result<(GreenList, GenerateOptions)> {
        let key = Experiment::Radioactivity.key(self.seed, 1 + j as u64);
        let green = GreenList::new(&key, self.scheme.clone(), self.vocab)?;
        let options = GenerateOptions {
            seed: (2 << 32) + (j as u64) * 1000,
            ..self.generate.clone()
        };
        Ok((green, options))
    }
}
