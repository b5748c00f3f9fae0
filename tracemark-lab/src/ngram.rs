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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// Collects n-grams; [`NgramTrainer::build`] turns them into a model.
#[derive(Debug, Clone)]
pub struct NgramTrainer {
    vocab_size: u32,
    config: NgramConfig,
    /// (context key, token) at every position of every sequence, at the highest order.
    grams: Vec<(u64, u32)>,
}

impl NgramTrainer {
    /// A trainer for token ids below `vocab_size`.
    pub fn new(vocab_size: u32, config: NgramConfig) -> Result<Self> {
        config.validate()?;
        if vocab_size == 0 || vocab_size > MAX_VOCAB_SIZE - 1 {
            return Err(NgramError::InvalidVocabSize(vocab_size));
        }
        Ok(NgramTrainer {
            vocab_size,
            config,
            grams: Vec::new(),
        })
    }

    /// Counts one sequence (a document: its first token is counted after the start token).
    pub fn add_sequence(&mut self, tokens: &[u32]) -> Result<()> {
        check_tokens(tokens, self.vocab_size)?;
        let m = self.config.order - 1;
        let mut key = start_key(m, self.vocab_size);
        self.grams.reserve(tokens.len());
        for &t in tokens {
            self.grams.push((key, t));
            key = push_key(key, t, m);
        }
        Ok(())
    }

    /// Tokens counted so far.
    pub fn tokens(&self) -> usize {
        self.grams.len()
    }

    /// Builds the model: sorts the n-grams of each order and precomputes every discounted
    /// probability, so queries do no arithmetic on counts.
    pub fn build(self) -> NgramModel {
        let NgramTrainer {
            vocab_size,
            config,
            mut grams,
        } = self;
        let n = config.order;
        grams.sort_unstable();
        // Distinct grams of the current order with their counts: raw at the top order,
        // continuation counts (distinct left extensions) below it.
        let mut counted = run_lengths(&grams);
        drop(grams);
        // levels[k - 2] is order k, for k in 2..=n.
        let mut levels: Vec<Level> = Vec::with_capacity(n.saturating_sub(1));
        for k in (2..=n).rev() {
            levels.push(Level::new(&counted, config.discount));
            // Order k - 1: drop the oldest context token; each distinct k-gram is one
            // continuation of its suffix.
            let mask = key_mask(k - 2);
            let mut lower: Vec<(u64, u32)> =
                counted.iter().map(|&(c, t, _)| (c & mask, t)).collect();
            lower.sort_unstable();
            counted = run_lengths(&lower);
        }
        levels.reverse();
        let unigram = Unigram::new(&counted, vocab_size, config.discount);
        NgramModel {
            vocab_size,
            config,
            levels,
            unigram,
        }
    }
}

/// A trained model. Queries take a history (the tokens before the position, oldest first; only
/// the last `order - 1` matter, and a short history is padded with the start token).
#[derive(Clone)]
pub struct NgramModel {
    vocab_size: u32,
    config: NgramConfig,
    /// Orders 2..=n, lowest first.
    levels: Vec<Level>,
    unigram: Unigram,
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
        let key = self.history_key(history);
        let mut p = self.unigram.p[token as usize];
        for (i, level) in self.levels.iter().enumerate() {
            if let Some(ctx) = level.get(key & key_mask(i + 1)) {
                p = level.mass_of(ctx, token) + ctx.backoff * p;
            }
        }
        Ok(p)
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
            let mut p = self.unigram.p[t as usize];
            for (i, level) in self.levels.iter().enumerate() {
                if let Some(ctx) = level.get(key & key_mask(i + 1)) {
                    p = level.mass_of(ctx, t) + ctx.backoff * p;
                }
            }
            total -= p.ln();
            key = push_key(key, t, m);
        }
        Ok(total / text.len() as f64)
    }

    /// The packed key of the last `order - 1` tokens of `history`, start-padded.
    fn history_key(&self, history: &[u32]) -> u64 {
        let m = self.config.order - 1;
        let tail = &history[history.len().saturating_sub(m)..];
        let mut key = start_key(m, self.vocab_size);
        for &t in tail {
            key = push_key(key, t, m);
        }
        key
    }

    /// Adds every order's discounted mass, weighted by the back-off of the orders above it, to
    /// `scratch` (cleared first); returns the weight left for the unigram distribution.
    fn accumulate(&self, key: u64, scratch: &mut Scratch) -> f64 {
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

    fn predict_key(&self, key: u64, scratch: &mut Scratch) -> u32 {
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

/// Draws continuations from a model at a temperature, from a seeded ChaCha stream.
///
/// At temperature `T` the weight of a token is `P^(1/T)`. Tokens outside the follower lists of
/// the history all have `P = gamma * p1`, so their total weight is `gamma^(1/T)` times a sum
/// precomputed once per sampler, and one of them is drawn from a precomputed cumulative table;
/// a draw therefore costs O(followers), whatever the temperature.
pub struct NgramSampler<'a> {
    model: &'a NgramModel,
    /// 1 / temperature; `None` is greedy.
    inverse_temperature: Option<f64>,
    /// p1^(1/T), and its running sum.
    q: Vec<f64>,
    cumulative: Vec<f64>,
    rng: ChaCha8Rng,
    scratch: Scratch,
}

impl std::fmt::Debug for NgramSampler<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NgramSampler")
            .field("model", self.model)
            .field(
                "temperature",
                &self.inverse_temperature.map_or(0.0, |it| 1.0 / it),
            )
            .finish()
    }
}

impl<'a> NgramSampler<'a> {
    /// A sampler at `temperature` (0: greedy) seeded with `seed`.
    pub fn new(model: &'a NgramModel, temperature: f64, seed: u64) -> Result<Self> {
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(NgramError::InvalidTemperature(temperature));
        }
        let inverse_temperature = (temperature > 0.0).then(|| 1.0 / temperature);
        let q: Vec<f64> = match inverse_temperature {
            Some(it) if it != 1.0 => model.unigram.p.iter().map(|&x| x.powf(it)).collect(),
            _ => model.unigram.p.clone(),
        };
        let mut acc = 0.0;
        let cumulative = q
            .iter()
            .map(|&x| {
                acc += x;
                acc
            })
            .collect();
        Ok(NgramSampler {
            model,
            inverse_temperature,
            q,
            cumulative,
            rng: ChaCha8Rng::seed_from_u64(seed),
            scratch: Scratch::new(model.vocab_size),
        })
    }

    /// Draws the next token after `history`.
    pub fn sample(&mut self, history: &[u32]) -> Result<u32> {
        check_tokens(history, self.model.vocab_size)?;
        let key = self.model.history_key(history);
        Ok(self.sample_key(key))
    }

    /// Up to `max_tokens` tokens after `context`, stopping before the first token in `stop`
    /// (which is not returned).
    pub fn generate(
        &mut self,
        context: &[u32],
        max_tokens: usize,
        stop: &[u32],
    ) -> Result<Vec<u32>> {
        check_tokens(context, self.model.vocab_size)?;
        let m = self.model.config.order - 1;
        let mut key = self.model.history_key(context);
        let mut out = Vec::with_capacity(max_tokens);
        while out.len() < max_tokens {
            let t = self.sample_key(key);
            if stop.contains(&t) {
                break;
            }
            out.push(t);
            key = push_key(key, t, m);
        }
        Ok(out)
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn sample_key(&mut self, key: u64) -> u32 {
        let Some(it) = self.inverse_temperature else {
            return self.model.predict_key(key, &mut self.scratch);
        };
        let model = self.model;
        let gamma = model.accumulate(key, &mut self.scratch);
        let p1 = &model.unigram.p;
        let pow = |x: f64| if it == 1.0 { x } else { x.powf(it) };
        let mut candidates = 0.0;
        let mut candidates_q = 0.0;
        for &w in &self.scratch.touched {
            let w = w as usize;
            let p = self.scratch.score[w] + gamma * p1[w];
            // Reuse the score slot for the candidate's weight.
            self.scratch.score[w] = pow(p);
            candidates += self.scratch.score[w];
            candidates_q += self.q[w];
        }
        let total_q = self.cumulative.last().copied().unwrap_or(0.0);
        let rest = (pow(gamma) * (total_q - candidates_q)).max(0.0);
        let mut u = self.uniform() * (candidates + rest);
        if u < candidates || rest <= 0.0 {
            for &w in &self.scratch.touched {
                u -= self.scratch.score[w as usize];
                if u < 0.0 {
                    return w;
                }
            }
            if let Some(&last) = self.scratch.touched.last() {
                return last; // rounding left u a hair above zero
            }
        }
        // A token outside the candidates, in proportion to q: rejection from the whole table,
        // then (if the candidates hold nearly all of q) an exact scan.
        for _ in 0..64 {
            let v = self.uniform() * total_q;
            let w = self
                .cumulative
                .partition_point(|&c| c <= v)
                .min(self.q.len() - 1);
            if !self.scratch.is_touched(w as u32) {
                return w as u32;
            }
        }
        let mut v = self.uniform() * (total_q - candidates_q).max(0.0);
        let mut last = 0u32;
        for (w, &x) in self.q.iter().enumerate() {
            if self.scratch.is_touched(w as u32) {
                continue;
            }
            last = w as u32;
            v -= x;
            if v < 0.0 {
                return last;
            }
        }
        last
    }
}

/// One order's table: contexts, and for each its followers with precomputed discounted masses.
#[derive(Clone)]
struct Level {
    index: HashMap<u64, u32, KeyHash>,
    contexts: Vec<Context>,
    followers: Vec<u32>,
    /// (count − D(count)) / total for each follower.
    mass: Vec<f64>,
    discounts: [f64; 3],
}

#[derive(Clone, Copy)]
struct Context {
    start: u32,
    len: u32,
    /// Mass passed to the lower order: Σ D(count) / total.
    backoff: f64,
}

impl Level {
    /// From sorted distinct (context, token, count) triples.
    fn new(counted: &[(u64, u32, u32)], discount: Discount) -> Self {
        let discounts = estimate_discounts(counted.iter().map(|g| g.2), discount);
        let mut level = Level {
            index: HashMap::default(),
            contexts: Vec::new(),
            followers: Vec::with_capacity(counted.len()),
            mass: Vec::with_capacity(counted.len()),
            discounts,
        };
        for group in counted.chunk_by(|a, b| a.0 == b.0) {
            let total: f64 = group.iter().map(|g| f64::from(g.2)).sum();
            let start = level.followers.len() as u32;
            let mut freed = 0.0;
            for &(_, t, c) in group {
                let d = discount_for(&discounts, c);
                freed += d;
                level.followers.push(t);
                level.mass.push((f64::from(c) - d) / total);
            }
            level.index.insert(group[0].0, level.contexts.len() as u32);
            level.contexts.push(Context {
                start,
                len: group.len() as u32,
                backoff: freed / total,
            });
        }
        level
    }

    fn get(&self, key: u64) -> Option<Context> {
        self.index.get(&key).map(|&i| self.contexts[i as usize])
    }

    /// The discounted mass of `token` in `ctx` (0 when it never followed it).
    fn mass_of(&self, ctx: Context, token: u32) -> f64 {
        let range = ctx.start as usize..(ctx.start + ctx.len) as usize;
        match self.followers[range.clone()].binary_search(&token) {
            Ok(j) => self.mass[range.start + j],
            Err(_) => 0.0,
        }
    }
}

/// The lowest order, dense: continuation counts interpolated with the uniform distribution.
#[derive(Clone)]
struct Unigram {
    p: Vec<f64>,
    argmax: u32,
    discounts: [f64; 3],
}

impl Unigram {
    fn new(counted: &[(u64, u32, u32)], vocab_size: u32, discount: Discount) -> Self {
        let discounts = estimate_discounts(counted.iter().map(|g| g.2), discount);
        let v = vocab_size as usize;
        let total: f64 = counted.iter().map(|g| f64::from(g.2)).sum();
        let mut p = vec![1.0 / v as f64; v];
        if total > 0.0 {
            let freed: f64 = counted.iter().map(|g| discount_for(&discounts, g.2)).sum();
            let uniform = freed / total / v as f64;
            p.iter_mut().for_each(|x| *x = uniform);
            for &(_, t, c) in counted {
                p[t as usize] += (f64::from(c) - discount_for(&discounts, c)) / total;
            }
        }
        let mut argmax = 0u32;
        for (w, &x) in p.iter().enumerate() {
            if x > p[argmax as usize] {
                argmax = w as u32;
            }
        }
        Unigram {
            p,
            argmax,
            discounts,
        }
    }
}

/// Dense per-token accumulator with a list of the tokens touched, reused across queries.
#[derive(Debug)]
struct Scratch {
    score: Vec<f64>,
    seen: Vec<bool>,
    touched: Vec<u32>,
}

impl Scratch {
    fn new(vocab_size: u32) -> Self {
        Scratch {
            score: vec![0.0; vocab_size as usize],
            seen: vec![false; vocab_size as usize],
            touched: Vec::new(),
        }
    }

    fn clear(&mut self) {
        for &w in &self.touched {
            self.score[w as usize] = 0.0;
            self.seen[w as usize] = false;
        }
        self.touched.clear();
    }

    fn add(&mut self, w: u32, x: f64) {
        let i = w as usize;
        if !self.seen[i] {
            self.seen[i] = true;
            self.touched.push(w);
        }
        self.score[i] += x;
    }

    fn get(&self, w: u32) -> f64 {
        self.score[w as usize]
    }

    fn is_touched(&self, w: u32) -> bool {
        self.seen[w as usize]
    }
}

/// Modified Kneser–Ney discounts from the counts of counts n1..n4 (Chen & Goodman's
/// estimates); 0.75 for all three where a count of counts is zero or an estimate falls outside
/// (0, c).
fn estimate_discounts(counts: impl Iterator<Item = u32>, discount: Discount) -> [f64; 3] {
    if let Discount::Fixed(d) = discount {
        return [d; 3];
    }
    let mut n = [0f64; 5];
    for c in counts {
        if (1..=4).contains(&c) {
            n[c as usize] += 1.0;
        }
    }
    let fallback = [0.75; 3];
    if n[1..].contains(&0.0) {
        return fallback;
    }
    let y = n[1] / (n[1] + 2.0 * n[2]);
    let d = [
        1.0 - 2.0 * y * n[2] / n[1],
        2.0 - 3.0 * y * n[3] / n[2],
        3.0 - 4.0 * y * n[4] / n[3],
    ];
    let ok = d
        .iter()
        .enumerate()
        .all(|(i, &x)| x.is_finite() && x > 0.0 && x < (i + 1) as f64);
    if ok {
        d
    } else {
        fallback
    }
}

fn discount_for(d: &[f64; 3], count: u32) -> f64 {
    match count {
        0 => 0.0,
        1 => d[0],
        2 => d[1],
        _ => d[2],
    }
}

/// Sorted (context, token) pairs to distinct (context, token, occurrences).
fn run_lengths(sorted: &[(u64, u32)]) -> Vec<(u64, u32, u32)> {
    sorted
        .chunk_by(|a, b| a == b)
        .map(|g| (g[0].0, g[0].1, g.len() as u32))
        .collect()
}

fn key_mask(tokens: usize) -> u64 {
    if tokens == 0 {
        0
    } else {
        u64::MAX >> (64 - TOKEN_BITS as usize * tokens)
    }
}

/// The key of `m` start tokens.
fn start_key(m: usize, vocab_size: u32) -> u64 {
    (0..m).fold(0, |k, _| push_key(k, vocab_size, m))
}

/// Shifts `t` into a key of the last `m` tokens (oldest in the high bits).
#[inline]
fn push_key(key: u64, t: u32, m: usize) -> u64 {
    ((key << TOKEN_BITS) | u64::from(t)) & key_mask(m)
}

fn check_tokens(tokens: &[u32], vocab_size: u32) -> Result<()> {
    match tokens.iter().find(|&&t| t >= vocab_size) {
        Some(&token) => Err(NgramError::TokenOutOfVocabulary { token, vocab_size }),
        None => Ok(()),
    }
}

type KeyHash = BuildHasherDefault<KeyHasher>;

/// Multiplicative hash for packed keys: the keys are already well spread, SipHash's DoS
/// resistance buys nothing here and costs most of a lookup.
#[derive(Default)]
struct KeyHasher(u64);

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

#[cfg(test)]
mod tests {
    use super::*;

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
