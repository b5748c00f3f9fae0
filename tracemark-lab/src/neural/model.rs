//! The trainable forward pass: llama (SmolLM2) on plain candle f32 ops, every one of which candle
//! can differentiate.
//!
//! Same arithmetic as `tracemark_model::llama` (RMSNorm, interleaved "NORM" RoPE as in a GGUF,
//! grouped-query causal attention, SiLU-gated MLP, output tied to the embedding) but written as
//! whole-tensor operations: candle's fused `rms_norm`, `rope_i` and `softmax_last_dim` have no
//! backward pass, so their basic-op equivalents are used here.

use candle_core::{DType, Device, Tensor, Var, D};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{NeuralConfig, NeuralError, Result};

/// What gradient descent may change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tuning {
    /// Every weight, the embedding included.
    Full,
    /// Every weight of the last `blocks` blocks and the final norm; the embedding (tied to the
    /// output) and the blocks below stay frozen, so their output for a text never changes and
    /// can be computed once ([`NeuralLlama::prefix_states`]), and backpropagation stops there.
    TopBlocks {
        /// Blocks trained, counted from the top.
        blocks: usize,
    },
    /// Low-rank adapters `scale · B·A` (rank `rank`, `scale = alpha / rank`) on every matrix of
    /// every block (q, k, v, o, gate, up, down); the pretrained weights and the embedding stay
    /// frozen. `B` starts at zero, so the adapted model starts as the pretrained one.
    Lora {
        /// Rank of the adapters.
        rank: usize,
        /// Scale numerator.
        alpha: f64,
    },
}

/// A low-rank adapter: `A` (rank, in), `B` (out, rank).
#[derive(Debug)]
struct Adapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
}

/// One matrix `(out, in)`, with its adapter under LoRA.
#[derive(Debug)]
pub(super) struct Linear {
    pub(super) weight: Tensor,
    adapter: Option<Adapter>,
}

impl Linear {
    /// `x · Wᵀ` (+ the adapter's `scale · x · Aᵀ · Bᵀ`), over the last dimension of `x`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let last = dims[dims.len() - 1];
        let rows = x.elem_count() / last.max(1);
        let x2 = x.reshape((rows, last))?;
        let mut y = x2.matmul(&self.weight.t()?)?;
        if let Some(ad) = &self.adapter {
            let low = x2.matmul(&ad.a.t()?)?.matmul(&ad.b.t()?)?;
            y = (y + (low * ad.scale)?)?;
        }
        let mut out = dims;
        let n = out.len();
        out[n - 1] = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }

    /// The weight with the adapter folded in, as a model file stores it.
    pub(super) fn merged(&self) -> Result<Tensor> {
        Ok(match &self.adapter {
            Some(ad) => (&self.weight + (ad.b.matmul(&ad.a)? * ad.scale)?)?,
            None => self.weight.clone(),
        })
    }
}

/// One transformer block; the matrices in GGUF order.
#[derive(Debug)]
pub(super) struct Block {
    pub(super) attn_norm: Tensor,
    pub(super) q: Linear,
    pub(super) k: Linear,
    pub(super) v: Linear,
    pub(super) o: Linear,
    pub(super) ffn_norm: Tensor,
    pub(super) gate: Linear,
    pub(super) up: Linear,
    pub(super) down: Linear,
}

/// Weights as read from a file or drawn at random, before they are made trainable.
#[derive(Debug)]
pub(super) struct RawWeights {
    pub(super) embed: Tensor,
    /// Per block: attn_norm, q, k, v, o, ffn_norm, gate, up, down.
    pub(super) blocks: Vec<[Tensor; 9]>,
    pub(super) norm: Tensor,
}

/// A llama whose weights (or adapters) are candle variables.
#[derive(Debug)]
pub struct NeuralLlama {
    pub(super) config: NeuralConfig,
    pub(super) embed: Tensor,
    pub(super) blocks: Vec<Block>,
    pub(super) norm: Tensor,
    cos: Tensor,
    sin: Tensor,
    vars: Vec<Var>,
    tuning: Tuning,
    /// Blocks at the bottom with no trainable parameter (nor any below them): their output is
    /// fixed. Under LoRA every block has adapters, so only the embedding lookup is fixed.
    frozen_blocks: usize,
}

impl NeuralLlama {
    /// Builds the model from `raw`, making trainable what `tuning` says (adapters drawn with
    /// `seed`).
    pub(super) fn from_raw(
        config: NeuralConfig,
        raw: RawWeights,
        tuning: Tuning,
        seed: u64,
    ) -> Result<Self> {
        config.check()?;
        let mut vars = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = raw.blocks.len();
        let frozen = match tuning {
            Tuning::Full => 0,
            Tuning::TopBlocks { blocks } => layers.saturating_sub(blocks),
            Tuning::Lora { .. } => layers,
        };
        let param = |t: Tensor, train: bool, vars: &mut Vec<Var>| -> Result<Tensor> {
            match train {
                true => {
                    let v = Var::from_tensor(&t.contiguous()?)?;
                    let t = v.as_tensor().clone();
                    vars.push(v);
                    Ok(t)
                }
                false => Ok(t),
            }
        };
        let embed = param(raw.embed, tuning == Tuning::Full, &mut vars)?;
        let norm = param(raw.norm, frozen < layers, &mut vars)?;
        let mut blocks = Vec::with_capacity(layers);
        for (i, [attn_norm, q, k, v, o, ffn_norm, gate, up, down]) in
            raw.blocks.into_iter().enumerate()
        {
            let train = i >= frozen;
            let mut lin = |w: Tensor, vars: &mut Vec<Var>| -> Result<Linear> {
                let adapter = match tuning {
                    Tuning::Lora { rank, alpha } => Some(adapter(&w, rank, alpha, &mut rng, vars)?),
                    _ => None,
                };
                Ok(Linear {
                    weight: param(w, train, vars)?,
                    adapter,
                })
            };
            blocks.push(Block {
                attn_norm: param(attn_norm, train, &mut vars)?,
                q: lin(q, &mut vars)?,
                k: lin(k, &mut vars)?,
                v: lin(v, &mut vars)?,
                o: lin(o, &mut vars)?,
                ffn_norm: param(ffn_norm, train, &mut vars)?,
                gate: lin(gate, &mut vars)?,
                up: lin(up, &mut vars)?,
                down: lin(down, &mut vars)?,
            });
        }
        let (cos, sin) = rope_tables(&config)?;
        Ok(NeuralLlama {
            config,
            embed,
            blocks,
            norm,
            cos,
            sin,
            vars,
            tuning,
            frozen_blocks: match tuning {
                Tuning::TopBlocks { .. } => frozen,
                Tuning::Full | Tuning::Lora { .. } => 0,
            },
        })
    }

    /// A model with random weights (normal, std 0.02 for matrices and the embedding, norms at
    /// one), every weight trainable: the small students of the tests.
    pub fn random(config: NeuralConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a11_0f5e_ed00);
        let dev = Device::Cpu;
        let (h, f) = (config.hidden, config.ffn);
        let (q_rows, kv_rows) = (h, config.kv_heads * config.head_dim());
        let mut normal = |rows: usize, cols: usize| normal(&mut rng, rows, cols, 0.02);
        let ones = || Tensor::ones(h, DType::F32, &dev);
        let embed = normal(config.vocab_size, h)?;
        let mut blocks = Vec::with_capacity(config.layers);
        for _ in 0..config.layers {
            blocks.push([
                ones()?,
                normal(q_rows, h)?,
                normal(kv_rows, h)?,
                normal(kv_rows, h)?,
                normal(h, q_rows)?,
                ones()?,
                normal(f, h)?,
                normal(f, h)?,
                normal(h, f)?,
            ]);
        }
        let raw = RawWeights {
            embed,
            blocks,
            norm: ones()?,
        };
        Self::from_raw(config, raw, Tuning::Full, seed)
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &NeuralConfig {
        &self.config
    }

    /// What training changes.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// The trainable variables (for the optimizer).
    pub fn vars(&self) -> &[Var] {
        &self.vars
    }

    /// Trainable parameters in all.
    pub fn trainable_parameters(&self) -> usize {
        self.vars.iter().map(|v| v.elem_count()).sum()
    }

    /// Whether [`Self::prefix_states`] is fixed by training (nothing trainable below it): true
    /// unless every weight, the embedding included, is trained.
    pub fn has_fixed_prefix(&self) -> bool {
        self.tuning != Tuning::Full
    }

    /// Residual stream `(B, T, hidden)` after the embedding and the frozen bottom blocks, for
    /// right-padded token rows `ids` `(B, T)` (u32). Padding after a row's end changes nothing
    /// before it: attention is causal.
    pub fn prefix_states(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        self.check_len(t)?;
        let max = ids.flatten_all()?.max(0)?.to_scalar::<u32>()?;
        if max as usize >= self.config.vocab_size {
            return Err(NeuralError::Input(format!(
                "token id {max} is outside the vocabulary ({})",
                self.config.vocab_size
            )));
        }
        let x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, self.config.hidden))?;
        self.run_blocks(x, 0..self.frozen_blocks)
    }

    /// Final-normed hidden states `(B, T, hidden)` from [`Self::prefix_states`]' output.
    pub fn suffix_hidden(&self, prefix: &Tensor) -> Result<Tensor> {
        let x = self.run_blocks(prefix.clone(), self.frozen_blocks..self.blocks.len())?;
        rms_norm(&x, &self.norm, self.config.rms_eps)
    }

    /// Final-normed hidden states `(B, T, hidden)` of right-padded token rows `ids` `(B, T)`.
    pub fn hidden_states(&self, ids: &Tensor) -> Result<Tensor> {
        self.suffix_hidden(&self.prefix_states(ids)?)
    }

    fn check_len(&self, t: usize) -> Result<()> {
        match t > self.config.context_length {
            true => Err(NeuralError::Input(format!(
                "sequence of {t} tokens exceeds the context length {}",
                self.config.context_length
            ))),
            false => Ok(()),
        }
    }

    /// Runs blocks `range` on the residual stream `x` `(B, T, hidden)`.
    fn run_blocks(&self, mut x: Tensor, range: std::ops::Range<usize>) -> Result<Tensor> {
        let t = x.dim(1)?;
        self.check_len(t)?;
        let mask = causal_mask(t)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        for block in &self.blocks[range] {
            let h = rms_norm(&x, &block.attn_norm, self.config.rms_eps)?;
            let y = self.attention(block, &h, &mask, &cos, &sin)?;
            x = (x + block.o.forward(&y)?)?;
            let h = rms_norm(&x, &block.ffn_norm, self.config.rms_eps)?;
            let act = (block.gate.forward(&h)?.silu()? * block.up.forward(&h)?)?;
            x = (x + block.down.forward(&act)?)?;
        }
        Ok(x)
    }

    /// Logits `(N, vocab)` of hidden-state rows `(N, hidden)` (the output is the embedding).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.embed.t()?)?)
    }

    /// Logits `(T, vocab)` at every position of one sequence (for comparison with the
    /// inference llama's `forward_all`).
    pub fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        if tokens.is_empty() {
            return Err(NeuralError::Input("forward_all: empty sequence".into()));
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        self.logits(&self.hidden_states(&ids)?.squeeze(0)?)
    }

    /// Causal grouped-query attention of the normed input `h` `(B, T, hidden)`.
    fn attention(
        &self,
        block: &Block,
        h: &Tensor,
        mask: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, t, _) = h.dims3()?;
        let (nh, nkv, hd) = (c.heads, c.kv_heads, c.head_dim());
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let q = rope(&heads(block.q.forward(h)?, nh)?, cos, sin)?;
        let k = rope(&heads(block.k.forward(h)?, nkv)?, cos, sin)?;
        let v = heads(block.v.forward(h)?, nkv)?;
        // Query head i reads key/value head i / (nh / nkv), as llama's repeat_kv.
        let repeat = |x: Tensor| -> Result<Tensor> {
            match nh / nkv {
                1 => Ok(x),
                r => Ok(x
                    .unsqueeze(2)?
                    .broadcast_as((b, nkv, r, t, hd))?
                    .contiguous()?
                    .reshape((b, nh, t, hd))?),
            }
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?;
        let scores = scores.broadcast_add(mask)?;
        let weights = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let y = weights.matmul(&v)?;
        Ok(y.transpose(1, 2)?.contiguous()?.reshape((b, t, nh * hd))?)
    }
}

/// An adapter for matrix `w` `(out, in)`: `A` normal with std `1/√in`, `B` zero.
fn adapter(
    w: &Tensor,
    rank: usize,
    alpha: f64,
    rng: &mut ChaCha8Rng,
    vars: &mut Vec<Var>,
) -> Result<Adapter> {
    let (out, inp) = w.dims2()?;
    let a = Var::from_tensor(&normal(rng, rank, inp, 1.0 / (inp as f64).sqrt())?)?;
    let b = Var::zeros((out, rank), DType::F32, &Device::Cpu)?;
    let adapter = Adapter {
        a: a.as_tensor().clone(),
        b: b.as_tensor().clone(),
        scale: alpha / rank.max(1) as f64,
    };
    vars.push(a);
    vars.push(b);
    Ok(adapter)
}

/// A `(rows, cols)` f32 matrix of normal draws (Box–Muller on a seeded stream).
fn normal(rng: &mut ChaCha8Rng, rows: usize, cols: usize, std: f64) -> Result<Tensor> {
    let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let n = rows * cols;
    let mut v = Vec::with_capacity(n + 1);
    while v.len() < n {
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let th = std::f64::consts::TAU * u2;
        v.push((r * th.cos()) as f32);
        v.push((r * th.sin()) as f32);
    }
    v.truncate(n);
    Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?)
}

/// `x / rms(x) · w` over the last dimension.
fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let mean_sq = x.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x.broadcast_div(&(mean_sq + eps)?.sqrt()?)?;
    Ok(normed.broadcast_mul(w)?)
}

/// RoPE on interleaved pairs `(2i, 2i + 1)` of `x` `(B, heads, T, d)`; `cos`, `sin` `(T, d/2)`.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, n, t, d) = x.dims4()?;
    let pairs = x.reshape((b, n, t, d / 2, 2))?;
    let x0 = pairs.narrow(4, 0, 1)?;
    let x1 = pairs.narrow(4, 1, 1)?;
    let cos = cos.reshape((t, d / 2, 1))?;
    let sin = sin.reshape((t, d / 2, 1))?;
    let r0 = (x0.broadcast_mul(&cos)? - x1.broadcast_mul(&sin)?)?;
    let r1 = (x0.broadcast_mul(&sin)? + x1.broadcast_mul(&cos)?)?;
    Ok(Tensor::cat(&[r0, r1], 4)?.reshape((b, n, t, d))?)
}

/// RoPE angles for every position of the context: `(context, head_dim / 2)` each.
fn rope_tables(c: &NeuralConfig) -> Result<(Tensor, Tensor)> {
    let d = c.head_dim();
    let inv: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1f32 / c.rope_theta.powf(i as f32 / d as f32))
        .collect();
    let mut cos = Vec::with_capacity(c.context_length * inv.len());
    let mut sin = Vec::with_capacity(c.context_length * inv.len());
    for pos in 0..c.context_length {
        for f in &inv {
            let angle = pos as f32 * f;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    let shape = (c.context_length, inv.len());
    Ok((
        Tensor::from_vec(cos, shape, &Device::Cpu)?,
        Tensor::from_vec(sin, shape, &Device::Cpu)?,
    ))
}

/// `(T, T)`: 0 where a row may attend, a large negative number above the diagonal.
fn causal_mask(t: usize) -> Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { -1e9 } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (t, t), &Device::Cpu)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny() -> NeuralConfig {
        NeuralConfig {
            vocab_size: 50,
            hidden: 32,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 64,
            rope_theta: 10_000.0,
            rms_eps: 1e-5,
            context_length: 32,
        }
    }

    /// The largest absolute difference between two tensors of one shape.
    pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn padding_after_a_sequence_changes_nothing_before_it() {
        let m = NeuralLlama::random(tiny(), 3).unwrap();
        let alone = m.forward_all(&[1, 2, 3, 4]).unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3, 4, 0, 0], [5, 6, 7, 8, 9, 10]], &Device::Cpu).unwrap();
        let batch = m
            .logits(&m.hidden_states(&ids).unwrap().get(0).unwrap())
            .unwrap();
        assert_eq!(alone.dims(), &[4, 50]);
        assert!(max_diff(&alone, &batch.narrow(0, 0, 4).unwrap()) < 1e-5);
        // Causal: the first rows do not see what follows.
        let longer = m.forward_all(&[1, 2, 3, 4, 9]).unwrap();
        assert!(max_diff(&alone, &longer.narrow(0, 0, 4).unwrap()) < 1e-5);
    }

    #[test]
    fn refuses_tokens_outside_the_vocabulary_and_overlong_sequences() {
        let m = NeuralLlama::random(tiny(), 3).unwrap();
        assert!(matches!(
            m.forward_all(&[1, 50]),
            Err(NeuralError::Input(_))
        ));
        assert!(matches!(
            m.forward_all(&[1; 33]),
            Err(NeuralError::Input(_))
        ));
        assert!(matches!(m.forward_all(&[]), Err(NeuralError::Input(_))));
        let bad = NeuralConfig { heads: 3, ..tiny() };
        assert!(NeuralLlama::random(bad, 1).is_err());
    }

    #[test]
    fn trainable_sets_follow_the_tuning() {
        let raw = |seed| {
            let m = NeuralLlama::random(tiny(), seed).unwrap();
            let blocks = m
                .blocks
                .iter()
                .map(|b| {
                    [
                        b.attn_norm.clone(),
                        b.q.weight.clone(),
                        b.k.weight.clone(),
                        b.v.weight.clone(),
                        b.o.weight.clone(),
                        b.ffn_norm.clone(),
                        b.gate.weight.clone(),
                        b.up.weight.clone(),
                        b.down.weight.clone(),
                    ]
                })
                .collect();
            RawWeights {
                embed: m.embed.clone(),
                blocks,
                norm: m.norm.clone(),
            }
        };
        let full = NeuralLlama::random(tiny(), 1).unwrap();
        assert_eq!(
            full.trainable_parameters(),
            50 * 32 + 32 + 2 * (2 * 32 + 32 * 32 * 2 + 16 * 32 * 2 + 3 * 64 * 32)
        );
        let top =
            NeuralLlama::from_raw(tiny(), raw(1), Tuning::TopBlocks { blocks: 1 }, 1).unwrap();
        assert_eq!(
            top.trainable_parameters(),
            32 + (2 * 32 + 32 * 32 * 2 + 16 * 32 * 2 + 3 * 64 * 32)
        );
        assert!(top.has_fixed_prefix() && !full.has_fixed_prefix());
        // LoRA starts as the base model: B is zero.
        let lora = NeuralLlama::from_raw(
            tiny(),
            raw(1),
            Tuning::Lora {
                rank: 4,
                alpha: 8.0,
            },
            1,
        )
        .unwrap();
        assert_eq!(lora.vars().len(), 2 * 7 * 2);
        let tokens = [3, 1, 4, 1, 5, 9, 2, 6];
        let base = full.forward_all(&tokens).unwrap();
        assert!(max_diff(&base, &lora.forward_all(&tokens).unwrap()) < 1e-6);
        assert!(max_diff(&base, &top.forward_all(&tokens).unwrap()) < 1e-6);
    }
}
