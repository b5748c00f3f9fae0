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
//! candle's `QMatMul`, whose results for a row do not depend on the other rows. Attention (RoPE,
//! scores, softmax, weighted sum) is computed here in plain Rust, one query row at a time with a
//! fixed summation order, instead of with candle's batched float matmuls, whose rounding depends
//! on the shapes. This matters more than it seems: `QMatMul` quantizes its input activations, so a
//! 1e-7 difference can flip a rounding and grow, over 30 blocks, to logits differing by ~1. With a
//! row-wise attention the whole model is *batch- and cache-invariant*: a token's logits are
//! bit-for-bit the same from [`Llama::forward_all`], from [`Llama::prefill`] + [`Llama::step`],
//! alone or in a padded batch (for a given [`LoadOptions`]).
//!
//! By default every matrix is re-quantized to Q8_0 at load time, because candle has no SIMD
//! kernel for the file's Q4_1: Q8_0 runs about 3.4x faster and is about as faithful to the file's
//! weights (see [`LoadOptions`]). [`LoadOptions::requantize`] `= None` keeps the file's
//! quantization (the tests compare it with candle-transformers).

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{bail, Device, Module, Result as CResult, Tensor, D};
use candle_transformers::quantized_nn::RmsNorm;

use crate::{Error, Result};

/// How to load the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Re-quantize every matrix to this format at load time (`None`: keep the file's format).
    ///
    /// Defaults to `Some(GgmlDType::Q8_0)`: candle's CPU kernels for Q8_0 are SIMD, those for
    /// Q4_1 are not, and Q8_0 is nearly lossless relative to the file's 4-bit weights.
    /// `Some(GgmlDType::F32)` runs the file's weights exactly, unquantized (slow, for reference).
    pub requantize: Option<GgmlDType>,
    /// Use candle's fastest Q8_0 kernel for every matrix, at some cost in fidelity (default:
    /// `false`). Only matters for Q8_0 on x86 CPUs with VNNI (AVX-VNNI or AVX512-VNNI).
    ///
    /// That kernel quantizes the *activations* with one scale per 256 values instead of per 32,
    /// and SmolLM2's hidden states have outlier channels: measured on 1,028 positions of human
    /// text against the exact (f32) weights, top-1 agreement drops from 96.2% to 90.2% and the
    /// mean KL divergence rises from 0.005 to 0.025 nats (the file's Q4_1 run by candle: 96.2%,
    /// 0.004), for about 2x faster decoding at batch 1, 3x at batch 8 and 4x over a whole text
    /// (2-core x86 with AVX-VNNI, see `examples/forward_bench.rs`). Models loaded with different
    /// values give different logits: generate and audit with the same.
    pub fast_matmul: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            requantize: Some(GgmlDType::Q8_0),
            fast_matmul: false,
        }
    }
}

/// The hyper-parameters read from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// Number of token ids (rows of the embedding, columns of the logits).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Number of query heads.
    pub heads: usize,
    /// Number of key/value heads (grouped-query attention: `heads / kv_heads` queries share one).
    pub kv_heads: usize,
    /// Width of one head (`hidden / heads`).
    pub head_dim: usize,
    /// RoPE base frequency (`llama.rope.freq_base`).
    pub rope_theta: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub rms_eps: f64,
    /// Longest sequence the model was trained for; longer inputs are refused.
    pub context_length: usize,
}

/// A quantized matrix, possibly stored with zero columns appended (see [`stored_width`]); the
/// input is padded with zeros to match, which leaves the products unchanged.
#[derive(Debug)]
struct Linear {
    mm: QMatMul,
    /// Zero columns appended to the weight (and to the input).
    pad: usize,
}

impl Linear {
    /// The matrix as read, in its own format.
    fn keep(t: QTensor) -> CResult<Self> {
        Ok(Self {
            mm: QMatMul::from_qtensor(t)?,
            pad: 0,
        })
    }

    /// The f32 matrix `w` (out, in) quantized to `dtype`, padded as `repacked` asks.
    fn quantize(w: &Tensor, dtype: GgmlDType, repacked: bool) -> CResult<Self> {
        let (n, k) = w.dims2()?;
        let pad = stored_width(dtype, n, k, repacked) - k;
        let q = match pad {
            0 => QTensor::quantize(w, dtype)?,
            _ => QTensor::quantize(&w.pad_with_zeros(1, 0, pad)?, dtype)?,
        };
        Ok(Self {
            mm: QMatMul::from_qtensor(q)?,
            pad,
        })
    }

    /// `t` converted to `dtype` through f32 (kept as is when `None`, or when it already is
    /// `dtype` and needs no padding).
    fn convert(
        t: QTensor,
        dtype: Option<GgmlDType>,
        repacked: bool,
        dev: &Device,
    ) -> CResult<Self> {
        match dtype {
            Some(dtype) => {
                let (n, k) = t.shape().dims2()?;
                if dtype == t.dtype() && stored_width(dtype, n, k, repacked) == k {
                    return Self::keep(t);
                }
                Self::quantize(&t.dequantize(dev)?, dtype, repacked)
            }
            None => Self::keep(t),
        }
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        match self.pad {
            0 => self.mm.forward(x),
            pad => self.mm.forward(&x.pad_with_zeros(D::Minus1, 0, pad)?),
        }
    }
}

/// The width at which a matrix with `k` input columns is stored, to get (`repacked`) or avoid
/// candle's repacked Q8_0 kernel.
///
/// On x86 CPUs with VNNI (AVX-VNNI or AVX512-VNNI) candle runs a Q8_0 matrix whose `k` is a
/// multiple of 256 with a much faster kernel: weights repacked in tiles of 16 rows, dot products
/// by `vpdpbusd`, but activations quantized with one scale per 256 values, which loses accuracy
/// on SmolLM2's outlier channels (see [`LoadOptions::fast_matmul`]). Any other `k` goes to the
/// per-32 kernel. So to get the fast kernel, SmolLM2's 576 columns are padded with zeros to 768
/// (a third more arithmetic, yet about 3x faster at batch 1 and 7x over many rows, measured on
/// this project's 2-core machine); to avoid it, the 1536 columns of `ffn_down` get 32 zero
/// columns. Zero columns leave the products unchanged.
fn stored_width(dtype: GgmlDType, n: usize, k: usize, repacked: bool) -> usize {
    const SUPERBLOCK: usize = 256;
    const BLOCK: usize = 32;
    if dtype != GgmlDType::Q8_0 || n % 16 != 0 || !vnni() {
        return k;
    }
    match (repacked, k % SUPERBLOCK == 0) {
        (true, _) => k.next_multiple_of(SUPERBLOCK),
        (false, true) => k + BLOCK,
        (false, false) => k,
    }
}

/// Whether candle's x86 repacked Q8_0 kernel runs on this CPU (mirrors candle's own test).
fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1") {
            return false;
        }
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A set of matrices applied to the same input, fused into one matmul when re-quantizing: one
/// activation quantization and one parallel region instead of two or three.
#[derive(Debug)]
enum Proj {
    /// One matrix whose output rows are the parts, in order, with these widths.
    Fused(Linear, Vec<usize>),
    /// Separate matrices (the file's quantization is kept).
    Split(Vec<Linear>),
}

impl Proj {
    fn forward(&self, x: &Tensor) -> CResult<Vec<Tensor>> {
        match self {
            Proj::Fused(mm, sizes) => {
                let y = mm.forward(x)?;
                let mut parts = Vec::with_capacity(sizes.len());
                let mut start = 0;
                for &size in sizes {
                    parts.push(y.narrow(D::Minus1, start, size)?);
                    start += size;
                }
                Ok(parts)
            }
            Proj::Split(mms) => mms.iter().map(|mm| mm.forward(x)).collect(),
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
    embed: Tensor,
    blocks: Vec<Block>,
    norm: RmsNorm,
    output: Linear,
    /// RoPE tables, `context_length` rows of `head_dim / 2`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    device: Device,
}

/// Reads the metadata keys this module needs, with a clear error when one is missing.
struct Meta<'a>(&'a gguf_file::Content);

impl Meta<'_> {
    fn get(&self, key: &str) -> CResult<&gguf_file::Value> {
        match self.0.metadata.get(key) {
            Some(v) => Ok(v),
            None => bail!("GGUF metadata has no `{key}`"),
        }
    }

    fn usize(&self, key: &str) -> CResult<usize> {
        let v = self.get(key)?;
        let n = match v {
            gguf_file::Value::I32(x) if *x >= 0 => *x as u64,
            gguf_file::Value::I64(x) if *x >= 0 => *x as u64,
            other => other.to_u64()?,
        };
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            Err(_) => bail!("GGUF metadata `{key}` = {n} does not fit in usize"),
        }
    }

    fn f32(&self, key: &str) -> CResult<f32> {
        match self.get(key)? {
            gguf_file::Value::F32(x) => Ok(*x),
            gguf_file::Value::F64(x) => Ok(*x as f32),
            other => bail!("GGUF metadata `{key}` is not a float: {other:?}"),
        }
    }
}

impl Llama {
    /// Loads the model from a GGUF file (architecture `llama`).
    ///
    /// Hyper-parameters come from the metadata, so other llama-architecture GGUF files load too
    /// (as long as the rotary dimension equals the head width).
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ModelMissing {
                path: path.to_path_buf(),
            },
            _ => Error::io(path, e),
        })?;
        // Everything that fails past this point is the file's content.
        Self::from_gguf(&mut file, options).map_err(|e| Error::gguf(path, e.to_string()))
    }

    fn from_gguf(file: &mut std::fs::File, options: &LoadOptions) -> CResult<Self> {
        let device = Device::Cpu;
        let ct = gguf_file::Content::read(file)?;
        let meta = Meta(&ct);
        let arch = meta.get("general.architecture")?.to_string()?;
        if arch != "llama" {
            bail!("architecture `{arch}`, expected `llama`");
        }
        let hidden = meta.usize("llama.embedding_length")?;
        let layers = meta.usize("llama.block_count")?;
        let heads = meta.usize("llama.attention.head_count")?;
        let kv_heads = meta.usize("llama.attention.head_count_kv")?;
        let rms_eps = f64::from(meta.f32("llama.attention.layer_norm_rms_epsilon")?);
        let rope_theta = match ct.metadata.get("llama.rope.freq_base") {
            Some(_) => meta.f32("llama.rope.freq_base")?,
            None => 10_000.0,
        };
        let context_length = meta.usize("llama.context_length")?;
        if heads == 0 || kv_heads == 0 || hidden % heads != 0 || heads % kv_heads != 0 {
            bail!("inconsistent head counts: hidden {hidden}, heads {heads}, kv heads {kv_heads}");
        }
        let head_dim = hidden / heads;
        if head_dim % 2 != 0 {
            bail!("head width {head_dim} is odd, RoPE needs pairs");
        }
        if let Some(rope_dim) = ct.metadata.get("llama.rope.dimension_count") {
            let rope_dim = rope_dim.to_u64()?;
            if rope_dim != head_dim as u64 {
                bail!("rope dim {rope_dim} != head dim {head_dim}: partial RoPE is not supported");
            }
        }
        if context_length == 0 {
            bail!("GGUF metadata gives a context length of 0");
        }

        let mut read = |name: &str| -> CResult<QTensor> { ct.tensor(file, name, &device) };

        let token_embd = read("token_embd.weight")?;
        let embed = token_embd.dequantize(&device)?;
        let (vocab_size, embd_width) = embed.dims2()?;
        if embd_width != hidden {
            bail!("token_embd is {vocab_size}x{embd_width}, expected width {hidden}");
        }
        let norm = RmsNorm::from_qtensor(read("output_norm.weight")?, rms_eps)?;
        let fast = options.fast_matmul;
        let output = match ct.tensor_infos.contains_key("output.weight") {
            true => {
                let output = read("output.weight")?;
                check_matrix(&output, vocab_size, hidden, "output")?;
                Linear::convert(output, options.requantize, fast, &device)?
            }
            // Tied embeddings: quantize the already dequantized copy rather than read it twice.
            false => match options.requantize {
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
                qkv: proj(vec![wq, wk, wv], options.requantize, fast, &device)?,
                // The attention output has no outlier channels: the fast kernel costs nothing
                // measurable there (top-1 and KL unchanged), so it is always used.
                wo: Linear::convert(wo, options.requantize, true, &device)?,
                ffn_norm,
                gate_up: proj(vec![gate, up], options.requantize, fast, &device)?,
                down: Linear::convert(down, options.requantize, fast, &device)?,
            });
        }

        let (cos, sin) = rope_tables(head_dim, rope_theta, context_length);
        Ok(Self {
            config: LlamaConfig {
                vocab_size,
                hidden,
                layers,
                heads,
                kv_heads,
                head_dim,
                rope_theta,
                rms_eps,
                context_length,
            },
            embed,
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
        Ok(self.output.forward(&h.squeeze(0)?)?)
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
        let last = h.narrow(1, t - 1, 1)?.squeeze(1)?.contiguous()?;
        Ok((session, self.output.forward(&last)?))
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
        self.check_length(session.len + 1)?;
        session.reserve(session.len + 1, cfg.context_length);
        let h = self.run(next, 1, session)?;
        Ok(self.output.forward(&h.squeeze(1)?)?)
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

    /// Runs the blocks on `(B, T)` tokens (row-major in `tokens`, `B = session.batch`) appended
    /// at column `session.len`, and returns the final-normed hidden states `(B, T, hidden)`.
    /// The session's keys and values are extended and `session.len` advanced by `T`; the caller
    /// has made room for them.
    fn run(&self, tokens: &[u32], t: usize, session: &mut Session) -> CResult<Tensor> {
        let cfg = &self.config;
        let (nh, nkv, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim);
        let b = session.batch;
        let start = session.len;
        // Each row's RoPE position counts from its sequence's first real token.
        let positions: Vec<usize> = session
            .pads
            .iter()
            .flat_map(|&pad| (start..start + t).map(move |col| col.saturating_sub(pad)))
            .collect();
        let ids = Tensor::new(tokens, &self.device)?;
        let mut x = self
            .embed
            .index_select(&ids, 0)?
            .reshape((b, t, cfg.hidden))?;
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
            let h = block.attn_norm.forward(&x)?;
            let [q, k, v] = three(block.qkv.forward(&h)?)?;
            let mut q = q.flatten_all()?.to_vec1::<f32>()?;
            let mut k = k.flatten_all()?.to_vec1::<f32>()?;
            let v = v.flatten_all()?.to_vec1::<f32>()?;
            rope(&mut q, hd, &positions, &self.cos, &self.sin);
            rope(&mut k, hd, &positions, &self.cos, &self.sin);
            cache.write(&k, &v, &shape);
            let y = attend(&q, cache, &session.pads, &shape);
            let y = Tensor::from_vec(y, (b, t, nh * hd), &self.device)?;
            x = (x + block.wo.forward(&y)?)?;
            let h = block.ffn_norm.forward(&x)?;
            let [gate, up] = two(block.gate_up.forward(&h)?)?;
            let act = (gate.silu()? * up)?;
            x = (x + block.down.forward(&act)?)?;
        }
        session.len += t;
        self.norm.forward(&x)
    }
}

/// The geometry of one attention call.
#[derive(Debug, Clone, Copy)]
struct AttnShape {
    /// Sequences.
    batch: usize,
    /// New rows (tokens) per sequence in this call.
    rows: usize,
    /// Cache column of the first new row.
    start: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Columns allocated per sequence and KV head in the cache.
    capacity: usize,
}

/// Rotates `x` (rows of whole heads of width `d`, one row per entry of `positions`) in place:
/// RoPE on interleaved pairs `(2i, 2i+1)` (llama.cpp "NORM" rope, candle's `rope_i`).
fn rope(x: &mut [f32], d: usize, positions: &[usize], cos: &[f32], sin: &[f32]) {
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
fn rope_tables(d: usize, theta: f32, max_len: usize) -> (Vec<f32>, Vec<f32>) {
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
fn attend(q: &[f32], cache: &KvCache, pads: &[usize], s: &AttnShape) -> Vec<f32> {
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

/// A refused argument, as the crate's error (candle's message type: the crate has no variant
/// for bad input, and these are misuses of the tensor API).
fn invalid(msg: String) -> Error {
    Error::Input(msg)
}

fn three(parts: Vec<Tensor>) -> CResult<[Tensor; 3]> {
    match <[Tensor; 3]>::try_from(parts) {
        Ok(a) => Ok(a),
        Err(v) => bail!("expected 3 projections, got {}", v.len()),
    }
}

fn two(parts: Vec<Tensor>) -> CResult<[Tensor; 2]> {
    match <[Tensor; 2]>::try_from(parts) {
        Ok(a) => Ok(a),
        Err(v) => bail!("expected 2 projections, got {}", v.len()),
    }
}

fn check_matrix(t: &QTensor, rows: usize, cols: usize, name: &str) -> CResult<()> {
    match t.shape().dims2() {
        Ok((r, c)) if r == rows && c == cols => Ok(()),
        _ => bail!("{name}: shape {:?}, expected ({rows}, {cols})", t.shape()),
    }
}

/// Matrices sharing one input. When re-quantizing they are stacked row-wise into one matrix
/// before quantization (exact: quantization blocks never cross rows); when the file's format is
/// kept they stay separate, so the weights are bit-for-bit the file's.
fn proj(
    mats: Vec<QTensor>,
    dtype: Option<GgmlDType>,
    repacked: bool,
    dev: &Device,
) -> CResult<Proj> {
    match dtype {
        Some(dtype) => {
            let mut parts = Vec::with_capacity(mats.len());
            let mut sizes = Vec::with_capacity(mats.len());
            for m in &mats {
                let f = m.dequantize(dev)?;
                sizes.push(f.dim(0)?);
                parts.push(f);
            }
            let stacked = Tensor::cat(&parts, 0)?;
            Ok(Proj::Fused(
                Linear::quantize(&stacked, dtype, repacked)?,
                sizes,
            ))
        }
        None => Ok(Proj::Split(
            mats.into_iter().map(Linear::keep).collect::<CResult<_>>()?,
        )),
    }
}

/// How many columns the KV cache grows by: bounded copying, little over-allocation.
const CACHE_CHUNK: usize = 128;

/// One block's keys (after RoPE) and values, laid out `[sequence][kv head][column][head_dim]`
/// with `Session::capacity` columns, filled up to `Session::len`.
#[derive(Debug, Clone)]
struct KvCache {
    k: Vec<f32>,
    v: Vec<f32>,
}

impl KvCache {
    /// Stores the new rows' keys and values, `(B, T, kv_heads * d)`, at columns `start..`.
    fn write(&mut self, k: &[f32], v: &[f32], s: &AttnShape) {
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
    layers: Vec<KvCache>,
    /// Left padding of each sequence, in columns.
    pads: Vec<usize>,
    /// Columns filled (padding included), the same for every sequence.
    len: usize,
    capacity: usize,
    batch: usize,
    kv_heads: usize,
    head_dim: usize,
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
    fn reserve(&mut self, needed: usize, max: usize) {
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
