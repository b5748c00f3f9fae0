//! Queries of a trained model: probabilities, distributions, top-1 predictions, and the
//! scratch space they share with the sampler.

use super::key::{check_tokens, key_mask, push_key, start_key};
use super::train::{Level, Unigram};
use super::{NgramConfig, NgramTrainer, Result};

/// A trained model. Queries take a history (the tokens before the position, oldest first; only
/// the last `order - 1` matter, and a short history is padded with the start token).
#[derive(Clone)]
pub struct NgramModel {
    pub(super) vocab_size: u32,
    pub(super) config: NgramConfig,
    /// Orders 2..=n, lowest first.
    pub(super) levels: Vec<Level>,
    pub(super) unigram: Unigram,
}

impl std::fmt::Debug for NgramModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgramModel")
            .field("vocab_size", &self.vocab_size)
            .field("config", &self.config)
            .field("contexts", &self.contexts())
            .finish()
    }
}

impl NgramModel {
    /// Trains on `sequences` in one call.
    pub fn train<'a>(
        vocab_size: u32,
        config: NgramConfig,
        sequences: impl IntoIterator<Item = &'a [u32]>,
    ) -> Result<Self> {
        let mut trainer = NgramTrainer::new(vocab_size, config)?;
        for s in sequences {
            trainer.add_sequence(s)?;
        }
        Ok(trainer.build())
    }

    /// Tokens in the vocabulary.
    pub fn vocab_size(&self) -> u32 {
        self.vocab_size
    }

    /// The model's shape.
    pub fn config(&self) -> NgramConfig {
        self.config
    }

    /// Distinct contexts stored at each order from 2 up (a size measure for reports).
    pub fn contexts(&self) -> Vec<usize> {
        self.levels.iter().map(|l| l.contexts.len()).collect()
    }

    /// The discounts (D1, D2, D3+) used at each order from 1 up.
    pub fn discounts(&self) -> Vec<[f64; 3]> {
        std::iter::once(self.unigram.discounts)
            .chain(self.levels.iter().map(|l| l.discounts))
            .collect()
    }

    /// P(`token` | `history`).
    pub fn probability(&self, history: &[u32], token: u32) -> Result<f64> {
        check_tokens(history, self.vocab_size)?;
        check_tokens(&[token], self.vocab_size)?;
        Ok(self.probability_key(self.history_key(history), token))
    }

    /// The whole next-token distribution after `history` (dense, `vocab_size` entries).
    pub fn distribution(&self, history: &[u32]) -> Result<Vec<f64>> {
        check_tokens(history, self.vocab_size)?;
        let mut scratch = Scratch::new(self.vocab_size);
        let gamma = self.accumulate(self.history_key(history), &mut scratch);
        let mut p: Vec<f64> = self.unigram.p.iter().map(|&x| gamma * x).collect();
        for &w in &scratch.touched {
            p[w as usize] += scratch.score[w as usize];
        }
        Ok(p)
    }

    /// The most likely next token after `history` (ties go to the lowest id).
    pub fn predict(&self, history: &[u32]) -> Result<u32> {
        check_tokens(history, self.vocab_size)?;
        let mut scratch = Scratch::new(self.vocab_size);
        Ok(self.predict_key(self.history_key(history), &mut scratch))
    }

    /// Reading mode: `predictions[i]` is the top-1 token for the position of `text[i]` given
    /// `prompt ++ text[..i]`.
    pub fn predictions(&self, prompt: &[u32], text: &[u32]) -> Result<Vec<u32>> {
        check_tokens(prompt, self.vocab_size)?;
        check_tokens(text, self.vocab_size)?;
        let m = self.config.order - 1;
        let mut key = self.history_key(prompt);
        let mut scratch = Scratch::new(self.vocab_size);
        let mut out = Vec::with_capacity(text.len());
        for &t in text {
            out.push(self.predict_key(key, &mut scratch));
            key = push_key(key, t, m);
        }
        Ok(out)
    }

    /// Natural-log loss per token of `text` after `prompt`: its mean −ln P (a quality measure;
    /// exp of it is the perplexity).
    pub fn cross_entropy(&self, prompt: &[u32], text: &[u32]) -> Result<f64> {
        check_tokens(prompt, self.vocab_size)?;
        check_tokens(text, self.vocab_size)?;
        if text.is_empty() {
            return Ok(0.0);
        }
        let m = self.config.order - 1;
        let mut key = self.history_key(prompt);
        let mut total = 0.0;
        for &t in text {
            total -= self.probability_key(key, t).ln();
            key = push_key(key, t, m);
        }
        Ok(total / text.len() as f64)
    }

    /// The packed key of the last `order - 1` tokens of `history`, start-padded.
    pub(super) fn history_key(&self, history: &[u32]) -> u64 {
        let m = self.config.order - 1;
        let tail = &history[history.len().saturating_sub(m)..];
        let mut key = start_key(m, self.vocab_size);
        for &t in tail {
            key = push_key(key, t, m);
        }
        key
    }

    /// P(`token` | the context packed in `key`): the unigram probability, interpolated up
    /// through every order whose context was seen.
    fn probability_key(&self, key: u64, token: u32) -> f64 {
        let mut p = self.unigram.p[token as usize];
        for (i, level) in self.levels.iter().enumerate() {
            if let Some(ctx) = level.get(key & key_mask(i + 1)) {
                p = level.mass_of(ctx, token) + ctx.backoff * p;
            }
        }
        p
    }

    /// Adds every order's discounted mass, weighted by the back-off of the orders above it, to
    /// `scratch` (cleared first); returns the weight left for the unigram distribution.
    pub(super) fn accumulate(&self, key: u64, scratch: &mut Scratch) -> f64 {
        scratch.clear();
        let mut weight = 1.0;
        for (i, level) in self.levels.iter().enumerate().rev() {
            let Some(ctx) = level.get(key & key_mask(i + 1)) else {
                continue; // an unseen context passes all of its mass down
            };
            let range = ctx.start as usize..(ctx.start + ctx.len) as usize;
            for (&w, &mass) in level.followers[range.clone()]
                .iter()
                .zip(&level.mass[range])
            {
                scratch.add(w, weight * mass);
            }
            weight *= ctx.backoff;
        }
        weight
    }

    pub(super) fn predict_key(&self, key: u64, scratch: &mut Scratch) -> u32 {
        let gamma = self.accumulate(key, scratch);
        // Any token outside the follower lists has probability gamma * p1, at most that of the
        // unigram argmax, so the argmax is among the followers or is the unigram argmax.
        let top = self.unigram.argmax;
        let mut best = (top, gamma * self.unigram.p[top as usize] + scratch.get(top));
        for &w in &scratch.touched {
            let p = scratch.score[w as usize] + gamma * self.unigram.p[w as usize];
            if p > best.1 || (p == best.1 && w < best.0) {
                best = (w, p);
            }
        }
        best.0
    }
}

/// Dense per-token accumulator with a list of the tokens touched, reused across queries.
#[derive(Debug)]
pub(super) struct Scratch {
    pub(super) score: Vec<f64>,
    seen: Vec<bool>,
    pub(super) touched: Vec<u32>,
}

impl Scratch {
    pub(super) fn new(vocab_size: u32) -> Self {
        Scratch {
            score: vec![0.0; vocab_size as usize],
            seen: vec![false; vocab_size as usize],
            touched: Vec::new(),
        }
    }

    pub(super) fn clear(&mut self) {
        for &w in &self.touched {
            self.score[w as usize] = 0.0;
            self.seen[w as usize] = false;
        }
        self.touched.clear();
    }

    pub(super) fn add(&mut self, w: u32, x: f64) {
        let i = w as usize;
        if !self.seen[i] {
            self.seen[i] = true;
            self.touched.push(w);
        }
        self.score[i] += x;
    }

    pub(super) fn get(&self, w: u32) -> f64 {
        self.score[w as usize]
    }

    pub(super) fn is_touched(&self, w: u32) -> bool {
        self.seen[w as usize]
    }
}
