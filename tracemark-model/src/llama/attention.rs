//! Attention in plain Rust, one query row at a time (see the module docs of `llama` for why),
//! RoPE, and the KV cache of a batch of sequences ([`Session`]).

use super::invalid;
use crate::Result;

/// The geometry of one attention call.
#[derive(Debug, Clone, Copy)]
pub(super) struct AttnShape {
    /// Sequences.
    pub(super) batch: usize,
    /// New rows (tokens) per sequence in this call.
    pub(super) rows: usize,
    /// Cache column of the first new row.
    pub(super) start: usize,
    pub(super) heads: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
    /// Columns allocated per sequence and KV head in the cache.
    pub(super) capacity: usize,
}

/// Rotates `x` (rows of whole heads of width `d`, one row per entry of `positions`) in place:
/// RoPE on interleaved pairs `(2i, 2i+1)` (llama.cpp "NORM" rope, candle's `rope_i`).
pub(super) fn rope(x: &mut [f32], d: usize, positions: &[usize], cos: &[f32], sin: &[f32]) {
    let half = d / 2;
    let width = x.len() / positions.len().max(1);
    for (row, &pos) in x.chunks_exact_mut(width).zip(positions) {
        let (c, s) = (&cos[pos * half..][..half], &sin[pos * half..][..half]);
        for head in row.chunks_exact_mut(d) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (x0, x1) = (pair[0], pair[1]);
                pair[0] = x0 * c[i] - x1 * s[i];
                pair[1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

/// cos/sin tables, `max_len` rows of `d/2`: angle `pos * theta^(-2i/d)` in f32, computed as
/// candle-transformers does.
pub(super) fn rope_tables(d: usize, theta: f32, max_len: usize) -> (Vec<f32>, Vec<f32>) {
    let inv_freq: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1f32 / theta.powf(i as f32 / d as f32))
        .collect();
    let mut cos = Vec::with_capacity(max_len * inv_freq.len());
    let mut sin = Vec::with_capacity(max_len * inv_freq.len());
    for pos in 0..max_len {
        for f in &inv_freq {
            let angle = pos as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}

/// Below this many multiply-adds an attention call runs on the calling thread only.
const PARALLEL_ATTENTION_WORK: usize = 1 << 21;

/// Grouped-query causal attention over the cache, one query row at a time.
///
/// `q` is `(B, T, heads * d)` (after RoPE); returns `(B, T, heads * d)`. Query head `h` reads KV
/// head `h / (heads / kv_heads)` (llama's `repeat_kv` order). Row `t` of sequence `b` (cache
/// column `start + t`) attends to columns `pads[b]..=start + t`; a padding row gets zeros. The
/// arithmetic of a row depends only on that row and the keys it sees, so results do not change
/// with the batch, the padding, the number of new rows or the thread count.
pub(super) fn attend(q: &[f32], cache: &KvCache, pads: &[usize], s: &AttnShape) -> Vec<f32> {
    let width = s.heads * s.head_dim;
    let n_rows = s.batch * s.rows;
    let mut out = vec![0f32; n_rows * width];
    // Work per row: keys seen times the head widths.
    let work: Vec<usize> = (0..n_rows)
        .map(|r| {
            let (b, t) = (r / s.rows, r % s.rows);
            (s.start + t + 1).saturating_sub(pads[b]) * width
        })
        .collect();
    let total: usize = work.iter().sum();
    let threads = candle_core::utils::get_num_threads().clamp(1, n_rows.max(1));
    if threads == 1 || total < PARALLEL_ATTENTION_WORK {
        attend_rows(q, cache, pads, s, 0, &mut out);
        return out;
    }
    // Contiguous ranges of rows with about equal work, one per thread.
    let mut bounds = vec![0];
    let mut acc = 0;
    for (r, w) in work.iter().enumerate() {
        acc += w;
        if acc * threads >= total * bounds.len() && bounds.len() < threads {
            bounds.push(r + 1);
        }
    }
    bounds.push(n_rows);
    bounds.dedup();
    std::thread::scope(|scope| {
        let mut rest: &mut [f32] = &mut out;
        for pair in bounds.windows(2) {
            let (first, end) = (pair[0], pair[1]);
            let (mine, tail) = rest.split_at_mut((end - first) * width);
            rest = tail;
            scope.spawn(move || attend_rows(q, cache, pads, s, first, mine));
        }
    });
    out
}

/// [`attend`] for the rows `first..first + out.len() / width`, written to `out`.
fn attend_rows(
    q: &[f32],
    cache: &KvCache,
    pads: &[usize],
    s: &AttnShape,
    first: usize,
    out: &mut [f32],
) {
    let d = s.head_dim;
    let width = s.heads * d;
    let group = s.heads / s.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut scores: Vec<f32> = Vec::with_capacity(s.start + s.rows);
    for (i, out_row) in out.chunks_exact_mut(width).enumerate() {
        let r = first + i;
        let (b, t) = (r / s.rows, r % s.rows);
        let col = s.start + t;
        let pad = pads[b];
        if col < pad {
            continue; // padding: never attended, its output is unused
        }
        let q_row = &q[r * width..][..width];
        for h in 0..s.heads {
            let base = ((b * s.kv_heads + h / group) * s.capacity) * d;
            let keys = &cache.k[base + pad * d..base + (col + 1) * d];
            let values = &cache.v[base + pad * d..base + (col + 1) * d];
            let qh = &q_row[h * d..][..d];
            scores.clear();
            scores.extend(keys.chunks_exact(d).map(|key| dot(qh, key) * scale));
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for sc in scores.iter_mut() {
                *sc = (*sc - max).exp();
                sum += *sc;
            }
            let o = &mut out_row[h * d..][..d];
            for (w, value) in scores.iter().zip(values.chunks_exact(d)) {
                for (oc, vc) in o.iter_mut().zip(value) {
                    *oc += w * vc;
                }
            }
            let inv = 1.0 / sum;
            for oc in o.iter_mut() {
                *oc *= inv;
            }
        }
    }
}

/// Dot product with eight independent lanes summed in a fixed order: vectorizes, and gives the
/// same result wherever it is called.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0f32;
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        tail += x * y;
    }
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
        + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
        + tail
}

/// How many columns the KV cache grows by: bounded copying, little over-allocation.
pub(super) const CACHE_CHUNK: usize = 128;

/// One block's keys (after RoPE) and values, laid out `[sequence][kv head][column][head_dim]`
/// with `Session::capacity` columns, filled up to `Session::len`.
#[derive(Debug, Clone)]
pub(super) struct KvCache {
    pub(super) k: Vec<f32>,
    pub(super) v: Vec<f32>,
}

impl KvCache {
    /// Stores the new rows' keys and values, `(B, T, kv_heads * d)`, at columns `start..`.
    pub(super) fn write(&mut self, k: &[f32], v: &[f32], s: &AttnShape) {
        let d = s.head_dim;
        for b in 0..s.batch {
            for t in 0..s.rows {
                let src = (b * s.rows + t) * s.kv_heads * d;
                for g in 0..s.kv_heads {
                    let dst = ((b * s.kv_heads + g) * s.capacity + s.start + t) * d;
                    let from = src + g * d;
                    self.k[dst..dst + d].copy_from_slice(&k[from..from + d]);
                    self.v[dst..dst + d].copy_from_slice(&v[from..from + d]);
                }
            }
        }
    }

    /// The same cache for the sequences `keep` (old indices), capacity `old_cap` -> `cap`,
    /// keeping the columns `cols` (moved to the front).
    fn relayout(
        &self,
        keep: &[usize],
        (old_cap, cap): (usize, usize),
        cols: std::ops::Range<usize>,
        kv: usize,
        d: usize,
    ) -> Self {
        let size = keep.len() * kv * cap * d;
        let mut new = Self {
            k: vec![0.0; size],
            v: vec![0.0; size],
        };
        let (from, n) = (cols.start, cols.len() * d);
        for (nb, &ob) in keep.iter().enumerate() {
            for g in 0..kv {
                let src = ((ob * kv + g) * old_cap + from) * d;
                let dst = ((nb * kv + g) * cap) * d;
                new.k[dst..dst + n].copy_from_slice(&self.k[src..src + n]);
                new.v[dst..dst + n].copy_from_slice(&self.v[src..src + n]);
            }
        }
        new
    }
}

/// The state of a batch of sequences being generated: per-block KV cache plus each sequence's
/// left padding. Created by [`Llama::prefill`], advanced by [`Llama::step`].
///
/// Cloning forks the batch (e.g. several continuations of one prompt).
#[derive(Debug, Clone)]
pub struct Session {
    pub(super) layers: Vec<KvCache>,
    /// Left padding of each sequence, in columns.
    pub(super) pads: Vec<usize>,
    /// Columns filled (padding included), the same for every sequence.
    pub(super) len: usize,
    pub(super) capacity: usize,
    pub(super) batch: usize,
    pub(super) kv_heads: usize,
    pub(super) head_dim: usize,
}

impl Session {
    /// Number of sequences in the batch.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// Number of real tokens (prompt plus generated) of sequence `i`.
    pub fn seq_len(&self, i: usize) -> Option<usize> {
        self.pads.get(i).map(|&pad| self.len - pad)
    }

    /// Keeps only the sequences at `keep` (indices into the current batch, in the new order),
    /// e.g. to drop finished answers so they no longer cost compute. Padding shared by all the
    /// remaining sequences is trimmed away. Their logits are unaffected.
    pub fn retain(&mut self, keep: &[usize]) -> Result<()> {
        if keep.is_empty() {
            return Err(invalid(
                "retain: a session needs at least one sequence".into(),
            ));
        }
        if let Some(&i) = keep.iter().find(|&&i| i >= self.batch) {
            return Err(invalid(format!(
                "retain: index {i} outside a batch of {}",
                self.batch
            )));
        }
        let pads: Vec<usize> = keep.iter().map(|&i| self.pads[i]).collect();
        let trim = pads.iter().copied().min().unwrap_or(0);
        for layer in &mut self.layers {
            let caps = (self.capacity, self.capacity);
            *layer = layer.relayout(keep, caps, trim..self.len, self.kv_heads, self.head_dim);
        }
        self.pads = pads.into_iter().map(|p| p - trim).collect();
        self.len -= trim;
        self.batch = keep.len();
        Ok(())
    }

    /// Makes room for `needed` columns (at most `max` are ever needed).
    pub(super) fn reserve(&mut self, needed: usize, max: usize) {
        if needed <= self.capacity {
            return;
        }
        let cap = (needed + CACHE_CHUNK.max(self.capacity / 2)).min(max.max(needed));
        let all: Vec<usize> = (0..self.batch).collect();
        for layer in &mut self.layers {
            let caps = (self.capacity, cap);
            *layer = layer.relayout(&all, caps, 0..self.len, self.kv_heads, self.head_dim);
        }
        self.capacity = cap;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 250.0 - 2.0)
            .collect()
    }

    #[test]
    fn rope_matches_formula() {
        let (rows, h, d) = (5, 3, 64);
        let (cos, sin) = rope_tables(d, 100_000.0, 64);
        let positions: Vec<usize> = (0..rows).map(|i| i * 7 % 50).collect();
        let xs = pseudo(rows * h * d, 7);
        let mut got = xs.clone();
        rope(&mut got, d, &positions, &cos, &sin);
        for (r, &p) in positions.iter().enumerate() {
            for hi in 0..h {
                for i in 0..d / 2 {
                    let a = p as f32 / 100_000f32.powf((2 * i) as f32 / d as f32);
                    let o = (r * h + hi) * d + 2 * i;
                    let (x0, x1) = (xs[o], xs[o + 1]);
                    assert!((got[o] - (x0 * a.cos() - x1 * a.sin())).abs() < 1e-4);
                    assert!((got[o + 1] - (x0 * a.sin() + x1 * a.cos())).abs() < 1e-4);
                }
            }
        }
    }

    /// Plain softmax attention of one query row over `keys`/`values` (rows of `d`).
    fn naive(q: &[f32], keys: &[&[f32]], values: &[&[f32]], d: usize) -> Vec<f32> {
        let scale = 1.0 / (d as f64).sqrt();
        let scores: Vec<f64> = keys
            .iter()
            .map(|k| q.iter().zip(*k).map(|(a, b)| (a * b) as f64).sum::<f64>() * scale)
            .collect();
        let m = scores.iter().copied().fold(f64::MIN, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
        let z: f64 = e.iter().sum();
        (0..d)
            .map(|c| {
                (e.iter()
                    .zip(values)
                    .map(|(w, v)| w * v[c] as f64)
                    .sum::<f64>()
                    / z) as f32
            })
            .collect()
    }

    /// Padded batch, prefix already cached (`start > 0`), grouped heads, several threads.
    #[test]
    fn attention_matches_naive() {
        let (b, nh, nkv, d) = (3, 9, 3, 64);
        let (start, rows, cap) = (4, 7, 16);
        let pads = [0, 6, 2];
        let s = AttnShape {
            batch: b,
            rows,
            start,
            heads: nh,
            kv_heads: nkv,
            head_dim: d,
            capacity: cap,
        };
        let mut cache = KvCache {
            k: pseudo(b * nkv * cap * d, 2),
            v: pseudo(b * nkv * cap * d, 3),
        };
        let new_k = pseudo(b * rows * nkv * d, 4);
        let new_v = pseudo(b * rows * nkv * d, 5);
        cache.write(&new_k, &new_v, &s);
        let q = pseudo(b * rows * nh * d, 1);
        let got = attend(&q, &cache, &pads, &s);
        let mut parallel = vec![0f32; got.len()];
        let half = (b * rows / 2) * nh * d;
        attend_rows(&q, &cache, &pads, &s, 0, &mut parallel[..half]);
        attend_rows(&q, &cache, &pads, &s, b * rows / 2, &mut parallel[half..]);
        assert_eq!(got, parallel, "row ranges give the same bits");
        for (bi, &pad) in pads.iter().enumerate() {
            for t in 0..rows {
                let col = start + t;
                for h in 0..nh {
                    let o = ((bi * rows + t) * nh + h) * d;
                    let g = &got[o..o + d];
                    if col < pad {
                        assert!(g.iter().all(|x| *x == 0.0));
                        continue;
                    }
                    let base = (bi * nkv + h / (nh / nkv)) * cap * d;
                    let keys: Vec<&[f32]> =
                        (pad..=col).map(|j| &cache.k[base + j * d..][..d]).collect();
                    let values: Vec<&[f32]> =
                        (pad..=col).map(|j| &cache.v[base + j * d..][..d]).collect();
                    let want = naive(&q[o..o + d], &keys, &values, d);
                    for (x, y) in g.iter().zip(&want) {
                        assert!((x - y).abs() < 1e-4, "b{bi} t{t} h{h}: {x} vs {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn relayout_moves_columns() {
        let (kv, d, cap) = (2, 4, 5);
        let cache = KvCache {
            k: (0..3 * kv * cap * d).map(|x| x as f32).collect(),
            v: (0..3 * kv * cap * d).map(|x| -(x as f32)).collect(),
        };
        let new = cache.relayout(&[2, 0], (cap, 8), 1..4, kv, d);
        for (nb, ob) in [(0, 2), (1, 0)] {
            for g in 0..kv {
                for c in 0..3 {
                    let src = ((ob * kv + g) * cap + 1 + c) * d;
                    let dst = ((nb * kv + g) * 8 + c) * d;
                    assert_eq!(new.k[dst..dst + d], cache.k[src..src + d]);
                    assert_eq!(new.v[dst..dst + d], cache.v[src..src + d]);
                }
            }
        }
    }
}
