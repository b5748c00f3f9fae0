//! Sampling continuations from a trained model.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::key::{check_tokens, push_key};
use super::model::Scratch;
use super::{NgramError, NgramModel, Result};

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

    /// Restarts the random stream at `seed`: the sampler then draws exactly what a new one
    /// with this seed would, without recomputing its O(vocabulary) tables.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = ChaCha8Rng::seed_from_u64(seed);
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
