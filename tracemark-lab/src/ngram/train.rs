//! Training: counting n-grams and turning the counts into the discounted, interpolated tables
//! a [`NgramModel`] queries.

use std::collections::HashMap;

use super::key::{check_tokens, key_mask, push_key, start_key, KeyHash};
use super::{Discount, NgramConfig, NgramError, NgramModel, Result, MAX_VOCAB_SIZE};

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

/// One order's table: contexts, and for each its followers with precomputed discounted masses.
#[derive(Clone)]
pub(super) struct Level {
    index: HashMap<u64, u32, KeyHash>,
    pub(super) contexts: Vec<Context>,
    pub(super) followers: Vec<u32>,
    /// (count − D(count)) / total for each follower.
    pub(super) mass: Vec<f64>,
    pub(super) discounts: [f64; 3],
}

#[derive(Clone, Copy)]
pub(super) struct Context {
    pub(super) start: u32,
    pub(super) len: u32,
    /// Mass passed to the lower order: Σ D(count) / total.
    pub(super) backoff: f64,
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

    pub(super) fn get(&self, key: u64) -> Option<Context> {
        self.index.get(&key).map(|&i| self.contexts[i as usize])
    }

    /// The discounted mass of `token` in `ctx` (0 when it never followed it).
    pub(super) fn mass_of(&self, ctx: Context, token: u32) -> f64 {
        let range = ctx.start as usize..(ctx.start + ctx.len) as usize;
        match self.followers[range.clone()].binary_search(&token) {
            Ok(j) => self.mass[range.start + j],
            Err(_) => 0.0,
        }
    }
}

/// The lowest order, dense: continuation counts interpolated with the uniform distribution.
#[derive(Clone)]
pub(super) struct Unigram {
    pub(super) p: Vec<f64>,
    pub(super) argmax: u32,
    pub(super) discounts: [f64; 3],
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
