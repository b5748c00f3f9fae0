//! The project's own forward pass for the llama architecture (SmolLM2) on candle ops.
//!
//! candle-transformers' `quantized_llama` returns logits for the last position only and fails on
//! batched prompts when the output matrix is quantized, while tracemark needs two other things:
//! the logits at *every* position of a text in one pass (the distillation audit reads a text and
//! takes the model's prediction at each position, [`Llama::forward_all`]) and batched incremental
//! generation with a KV cache for many prompts of different lengths ([`Llama::prefill`],
//! [`Llama::step`]).
//!
//! Layout of a GGUF llama (as written by llama.cpp's converter): per block `attn_norm`,
//! `attn_q/k/v/output`, `ffn_norm`, `ffn_gate/up/down`, then `output_norm` and `output` (absent
//! when the embeddings are tied, as in SmolLM2: `token_embd` is reused). The converter permutes
//! the Q and K rows so that RoPE is applied to *interleaved* pairs `(2i, 2i+1)` (llama.cpp's
//! "NORM" rope, candle's `rope_i`), not to the halves `(i, i + d/2)` of the Hugging Face layout.
//!
//! Everything runs on the CPU in f32 activations; the matrices stay quantized and go through
//! tracemark's kernel or candle's `QMatMul`, whose results for a row do not depend on the other
//! rows. Attention (RoPE,
//! scores, softmax, weighted sum) is computed here in plain Rust, one query row at a time with a
//! fixed summation order, instead of with candle's batched float matmuls, whose rounding depends
//! on the shapes. This matters more than it seems: `QMatMul` quantizes its input activations, so a
//! 1e-7 difference can flip a rounding and grow, over 30 blocks, to logits differing by ~1. With a
//! row-wise attention the whole model is *batch- and cache-invariant*: a token's logits are
//! bit-for-bit the same from [`Llama::forward_all`], from [`Llama::prefill`] + [`Llama::step`],
//! alone or in a padded batch (for a given [`LoadOptions`]).
//!
//! By default every matrix is re-quantized to Q8_0 and run by candle's per-32 kernel.
//! [`LoadOptions::packed`] keeps the file's Q4_1 and Q8_0 matrices bit for bit and runs them on
//! tracemark's own kernel (module `packed`: activations quantized per 32 values as llama.cpp
//! does, integer dot products with AVX512-VNNI, the same bits from a scalar fallback), which is
//! faster and at least as faithful at batch 1; `Some(F32)` is the exact reference.

mod attention;
mod config;
mod linear;
mod norm;
mod packed;
#[cfg(target_arch = "x86_64")]
mod packed_x86;

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{bail, Device, Result as CResult, Tensor};

use crate::{Error, Result};
pub use attention::Session;
use attention::{attend, rope, rope_tables, AttnShape, KvCache, CACHE_CHUNK};
pub use config::LlamaConfig;
use linear::{check_matrix, proj, Linear, Proj};
use norm::{add_assign, swiglu, RmsNorm};

/// How to load the weights (the default, [`LoadOptions::packed`]: tracemark's own kernel on the
/// file's weights; [`LoadOptions::candle`]: every matrix re-quantized to Q8_0 and run by
/// candle's per-32 kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Re-quantize every matrix to this format at load time and run it with candle's kernels;
    /// `None` (the default) runs tracemark's own kernel instead.
    ///
    /// With `None` ([`LoadOptions::packed`]), every matrix runs on tracemark's kernel,
    /// activations quantized per 32 values like llama.cpp's: the file's Q4_1 and Q8_0 matrices
    /// (all of SmolLM2's) exactly as stored, other formats quantized to Q8_0 first (f32 and Q8_0
    /// copies of a model then run alike). It is faster than llama.cpp on the same file and at
    /// least as faithful (README, "Generation speed"). `Some(GgmlDType::Q8_0)`
    /// ([`LoadOptions::candle`]) was the default before it; `Some(GgmlDType::F32)` runs the
    /// file's weights exactly, unquantized (slow, for reference).
    pub requantize: Option<GgmlDType>,
    /// Use candle's fastest Q8_0 kernel for every matrix, at some cost in fidelity (default:
    /// `false`). Re-quantizes to Q8_0 when `requantize` is `None`; only matters for Q8_0 on x86
    /// CPUs with VNNI (AVX-VNNI or AVX512-VNNI).
    ///
    /// That kernel quantizes the *activations* with one scale per 256 values instead of per 32,
    /// and SmolLM2's hidden states have outlier channels: measured on 4,112 positions of human
    /// text against the exact (f32) weights (`examples/fidelity_bench.rs --texts 16`), top-1
    /// agreement is 90.6% and the mean KL divergence 0.022 nats, against 95.9% and 0.0036 for
    /// the default kernel (95.6%, 0.0051 for candle's per-32 Q8_0 kernel; llama.cpp on the same
    /// tokens: 95.5%, 0.0037). It is faster than the default over a whole text read at once
    /// (`forward_all`: about 2.8x on one thread), slower at batch 1 (see
    /// `examples/forward_bench.rs`).
    /// Models loaded with different values give different logits: generate and audit with the
    /// same.
    pub fast_matmul: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self::packed()
    }
}

impl LoadOptions {
    /// candle's per-32 Q8_0 kernel on every matrix re-quantized to Q8_0 (the default before
    /// tracemark's kernel; the lab's caches were made with it).
    pub fn candle() -> Self {
        Self {
            requantize: Some(GgmlDType::Q8_0),
            fast_matmul: false,
        }
    }

    /// tracemark's own kernel on the file's weights (see [`LoadOptions::requantize`]).
    pub fn packed() -> Self {
        Self {
            requantize: None,
            fast_matmul: false,
        }
    }

    /// The format candle's kernels get: `fast_matmul` needs Q8_0.
    fn candle_format(&self) -> Option<GgmlDType> {
        match (self.requantize, self.fast_matmul) {
            (None, true) => Some(GgmlDType::Q8_0),
            (dtype, _) => dtype,
        }
    }
}

#[derive(Debug)]
struct Block {
    attn_norm: RmsNorm,
    /// Q, K, V.
    qkv: Proj,
    wo: Linear,
    ffn_norm: RmsNorm,
    /// Gate, up.
    gate_up: Proj,
    down: Linear,
}

/// SmolLM2 (llama architecture) loaded from a GGUF file, ready to run on the CPU.
///
/// `Llama` is immutable while running (the KV cache lives in a [`Session`]), so one loaded model
/// can serve several sessions or threads.
#[derive(Debug)]
pub struct Llama {
    config: LlamaConfig,
    /// (vocab, hidden) f32: dequantized once, the lookup is a row gather.
    embed: Vec<f32>,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    /// RoPE tables, `context_length` rows of `head_dim / 2`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    device: Device,
}

impl Llama {
    /// Loads the model from a GGUF file (architecture `llama`).
    ///
    /// Hyper-parameters come from the metadata, so other llama-architecture GGUF files load too
    /// (as long as the rotary dimension equals the head width).
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let (mut file, ct) = crate::gguf::open(path)?;
        // Everything that fails past this point is the file's content.
        Self::from_gguf(&mut file, &ct, options).map_err(|e| Error::gguf_candle(path, &e))
    }

    fn from_gguf(
        file: &mut std::fs::File,
        ct: &gguf_file::Content,
        options: &LoadOptions,
    ) -> CResult<Self> {
        let device = Device::Cpu;
        let config = LlamaConfig::from_gguf(ct)?;
        let LlamaConfig {
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            rope_theta,
            rms_eps,
            context_length,
            ..
        } = config;

        let mut read = |name: &str| -> CResult<QTensor> { ct.tensor(file, name, &device) };

        let token_embd = read("token_embd.weight")?;
        let embed = token_embd.dequantize(&device)?;
        let vocab_size = config.vocab_size;
        let norm = RmsNorm::from_qtensor(read("output_norm.weight")?, rms_eps)?;
        let fast = options.fast_matmul;
        let requantize = options.candle_format();
        let output = match ct.tensor_infos.contains_key("output.weight") {
            true => {
                let output = read("output.weight")?;
                check_matrix(&output, vocab_size, hidden, "output")?;
                Linear::convert(output, requantize, fast, &device)?
            }
            // Tied embeddings: quantize the already dequantized copy rather than read it twice.
            false => match requantize {
                Some(dtype) => Linear::quantize(&embed, dtype, fast)?,
                None => Linear::keep(token_embd)?,
            },
        };

        let q_rows = heads * head_dim;
        let kv_rows = kv_heads * head_dim;
        let mut blocks = Vec::with_capacity(layers);
        for i in 0..layers {
            let p = format!("blk.{i}");
            let mut mat = |name: &str, rows: usize, cols: usize| -> CResult<QTensor> {
                let t = read(&format!("{p}.{name}.weight"))?;
                check_matrix(&t, rows, cols, &format!("{p}.{name}"))?;
                Ok(t)
            };
            let wq = mat("attn_q", q_rows, hidden)?;
            let wk = mat("attn_k", kv_rows, hidden)?;
            let wv = mat("attn_v", kv_rows, hidden)?;
            let wo = mat("attn_output", hidden, q_rows)?;
            let (ffn_rows, _) = match ct.tensor_infos.get(&format!("{p}.ffn_gate.weight")) {
                Some(info) => info.shape.dims2()?,
                None => bail!("GGUF has no tensor {p}.ffn_gate.weight"),
            };
            let gate = mat("ffn_gate", ffn_rows, hidden)?;
            let up = mat("ffn_up", ffn_rows, hidden)?;
            let down = mat("ffn_down", hidden, ffn_rows)?;
            let attn_norm =
                RmsNorm::from_qtensor(read(&format!("{p}.attn_norm.weight"))?, rms_eps)?;
            let ffn_norm = RmsNorm::from_qtensor(read(&format!("{p}.ffn_norm.weight"))?, rms_eps)?;
            blocks.push(Block {
                attn_norm,
                qkv: proj(vec![wq, wk, wv], requantize, fast, &device)?,
                // The attention output has no outlier channels: the fast kernel costs nothing
                // measurable there (top-1 and KL unchanged), so it is always used.
                wo: Linear::convert(wo, requantize, true, &device)?,
                ffn_norm,
                gate_up: proj(vec![gate, up], requantize, fast, &device)?,
                down: Linear::convert(down, requantize, fast, &device)?,
            });
        }

        let (cos, sin) = rope_tables(head_dim, rope_theta, context_length);
        Ok(Self {
            config,
            embed: embed.flatten_all()?.to_vec1::<f32>()?,
            blocks,
            norm,
            output,
            cos,
            sin,
            device,
        })
    }

    /// The hyper-parameters read from the file.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Logits `(T, vocab)` f32 at every position of one token sequence, in one pass, no cache.
    ///
    /// Row `i` is the model's prediction for token `i + 1` given `tokens[..=i]`: the audit's
    /// reading mode. The text is taken as is (no BOS is added: SmolLM2 does not use one). The rows
    /// are bit-for-bit those that incremental generation produces for the same tokens.
    pub fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        let t = tokens.len();
        if t == 0 {
            return Err(invalid("forward_all: empty token sequence".into()));
        }
        self.check_tokens(tokens)?;
        self.check_length(t)?;
        let mut kv = self.new_session(vec![0], t);
        let h = self.run(tokens, t, &mut kv)?;
        finite(self.logits(&h)?)
    }

    /// Starts batched generation: runs the prompts through the model, fills a KV cache, and
    /// returns it with the logits `(B, vocab)` at each prompt's last token.
    ///
    /// Prompts may differ in length: they are left-padded to the longest, the padding is never
    /// attended to, and RoPE positions count from each prompt's first real token, so every
    /// sequence gets exactly (bit for bit) the logits it would get alone.
    pub fn prefill(&self, prompts: &[Vec<u32>]) -> Result<(Session, Tensor)> {
        if prompts.is_empty() {
            return Err(invalid("prefill: no prompts".into()));
        }
        if prompts.iter().any(Vec::is_empty) {
            return Err(invalid(
                "prefill: every prompt needs at least one token".into(),
            ));
        }
        let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
        self.check_length(t)?;
        let pads: Vec<usize> = prompts.iter().map(|p| t - p.len()).collect();
        let mut tokens = Vec::with_capacity(prompts.len() * t);
        for (prompt, &pad) in prompts.iter().zip(&pads) {
            self.check_tokens(prompt)?;
            // Padding repeats the first real token (any valid id works: it is never attended).
            tokens.extend(std::iter::repeat_n(prompt[0], pad));
            tokens.extend_from_slice(prompt);
        }
        let capacity = (t + CACHE_CHUNK).min(self.config.context_length);
        let mut session = self.new_session(pads, capacity);
        let h = self.run(&tokens, t, &mut session)?;
        let hidden = self.config.hidden;
        let last: Vec<f32> = h
            .chunks_exact(t * hidden)
            .flat_map(|rows| &rows[(t - 1) * hidden..])
            .copied()
            .collect();
        Ok((session, finite(self.logits(&last)?)?))
    }

    /// Appends one token to every sequence of the session and returns the logits `(B, vocab)`
    /// for the next one.
    ///
    /// Every sequence advances together: a sequence that has finished (EOS) can simply be fed
    /// any token and its outputs ignored, or be removed with [`Session::retain`] so that it no
    /// longer costs compute.
    pub fn step(&self, session: &mut Session, next: &[u32]) -> Result<Tensor> {
        let b = session.batch;
        if next.len() != b {
            return Err(invalid(format!(
                "step: {} tokens for a batch of {b}",
                next.len()
            )));
        }
        let cfg = &self.config;
        if (session.layers.len(), session.kv_heads, session.head_dim)
            != (cfg.layers, cfg.kv_heads, cfg.head_dim)
        {
            return Err(invalid("step: the session belongs to another model".into()));
        }
        self.check_tokens(next)?;
        // The limit is on each sequence's real tokens, not on the padded columns: a short
        // prompt batched with a long one gets as much room as it would alone.
        let (fewest_pads, most_pads) = session
            .pads
            .iter()
            .fold((usize::MAX, 0), |(lo, hi), &p| (lo.min(p), hi.max(p)));
        self.check_length(session.len - fewest_pads.min(session.len) + 1)?;
        session.reserve(session.len + 1, cfg.context_length + most_pads);
        let h = self.run(next, 1, session)?;
        finite(self.logits(&h)?)
    }

    fn new_session(&self, pads: Vec<usize>, capacity: usize) -> Session {
        let cfg = &self.config;
        let batch = pads.len();
        let size = batch * cfg.kv_heads * capacity * cfg.head_dim;
        Session {
            layers: (0..cfg.layers)
                .map(|_| KvCache {
                    k: vec![0.0; size],
                    v: vec![0.0; size],
                })
                .collect(),
            pads,
            len: 0,
            capacity,
            batch,
            kv_heads: cfg.kv_heads,
            head_dim: cfg.head_dim,
        }
    }

    fn check_tokens(&self, tokens: &[u32]) -> Result<()> {
        let v = self.config.vocab_size;
        match tokens.iter().find(|&&id| id as usize >= v) {
            Some(id) => Err(invalid(format!(
                "token id {id} is outside the vocabulary ({v})"
            ))),
            None => Ok(()),
        }
    }

    fn check_length(&self, len: usize) -> Result<()> {
        let max = self.config.context_length;
        match len > max {
            true => Err(invalid(format!(
                "sequence of {len} tokens exceeds the context length {max}"
            ))),
            false => Ok(()),
        }
    }

    /// The output matrix applied to rows of final hidden states: `(rows, vocab)`.
    fn logits(&self, h: &[f32]) -> CResult<Tensor> {
        let rows = h.len() / self.config.hidden;
        let logits = self.output.forward(h, rows)?;
        Tensor::from_vec(logits, (rows, self.config.vocab_size), &self.device)
    }

    /// Runs the blocks on `(B, T)` tokens (row-major in `tokens`, `B = session.batch`) appended
    /// at column `session.len`, and returns the final-normed hidden states `(B, T, hidden)`,
    /// row-major. The session's keys and values are extended and `session.len` advanced by `T`;
    /// the caller has made room for them.
    fn run(&self, tokens: &[u32], t: usize, session: &mut Session) -> CResult<Vec<f32>> {
        let cfg = &self.config;
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let b = session.batch;
        let start = session.len;
        let rows = b * t;
        // Each row's RoPE position counts from its sequence's first real token.
        let positions: Vec<usize> = session
            .pads
            .iter()
            .flat_map(|&pad| (start..start + t).map(move |col| col.saturating_sub(pad)))
            .collect();
        let mut x = Vec::with_capacity(rows * cfg.hidden);
        for &id in tokens {
            x.extend_from_slice(&self.embed[id as usize * cfg.hidden..][..cfg.hidden]);
        }
        let shape = AttnShape {
            batch: b,
            rows: t,
            start,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
            capacity: session.capacity,
        };
        for (block, cache) in self.blocks.iter().zip(&mut session.layers) {
            let h = block.attn_norm.forward(&x);
            let [mut q, mut k, v] = three(block.qkv.forward(&h, rows)?)?;
            rope(&mut q, hd, &positions, &self.cos, &self.sin);
            rope(&mut k, hd, &positions, &self.cos, &self.sin);
            cache.write(&k, &v, &shape);
            let y = attend(&q, cache, &session.pads, &shape);
            add_assign(&mut x, &block.wo.forward(&y, rows)?);
            let h = block.ffn_norm.forward(&x);
            let [gate, up] = two(block.gate_up.forward(&h, rows)?)?;
            add_assign(&mut x, &block.down.forward(&swiglu(&gate, &up), rows)?);
        }
        session.len += t;
        Ok(self.norm.forward(&x))
    }
}

/// A refused argument, as the crate's error (candle's message type: the crate has no variant
/// for bad input, and these are misuses of the tensor API).
fn invalid(msg: String) -> Error {
    Error::Input(msg)
}

/// Refuses logits with a NaN or an infinity: a file with broken weights or hyper-parameters
/// must not yield a verdict. One sum over the row is enough: real logits are far too small for
/// a finite sum to overflow, and any NaN or infinity propagates into it.
fn finite(logits: Tensor) -> Result<Tensor> {
    let total = logits.sum_all()?.to_scalar::<f32>()?;
    if total.is_finite() {
        Ok(logits)
    } else {
        Err(Error::Input(
            "the model computed non-finite logits (NaN or infinity): its weights or \
             hyper-parameters are broken"
                .into(),
        ))
    }
}

fn three(parts: Vec<Vec<f32>>) -> CResult<[Vec<f32>; 3]> {
    match <[Vec<f32>; 3]>::try_from(parts) {
        Ok(a) => Ok(a),
        Err(v) => bail!("expected 3 projections, got {}", v.len()),
    }
}

fn two(parts: Vec<Vec<f32>>) -> CResult<[Vec<f32>; 2]> {
    match <[Vec<f32>; 2]>::try_from(parts) {
        Ok(a) => Ok(a),
        Err(v) => bail!("expected 2 projections, got {}", v.len()),
    }
}

/// Sets the number of CPU threads candle uses; call it first thing in `main`, before loading a
/// model or running any tensor op (and before spawning threads: it sets environment variables).
///
/// candle's quantized matmuls run on a private thread pool sized from `CANDLE_NUM_THREADS`,
/// else `RAYON_NUM_THREADS`, read once when it is first used; its float matmuls (gemm) use the
/// global rayon pool and read `RAYON_NUM_THREADS` at each call. This sets both variables and
/// builds both pools, and fails if a pool was already started with another size. Default (never
/// called): one thread per physical core. On a small machine whose cores are busy with other
/// work, 1 thread may beat 2: the pool's workers spin while they wait for each other.
pub fn set_threads(n: usize) -> Result<()> {
    let n = n.max(1);
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    candle_core::utils::init_global_threadpool();
    let workers = candle_core::utils::barrier_pool().n_workers() + 1;
    if workers != n {
        return Err(invalid(format!(
            "set_threads({n}): candle's thread pool was already started with {workers} threads"
        )));
    }
    Ok(())
}
