//! The model's hyper-parameters, read from the GGUF metadata and checked against bounds before
//! anything is allocated from them: in an audit the suspect supplies the file, and a header that
//! claims 4 billion blocks or a context of 4 billion tokens must be refused with a message, not
//! abort the process in an allocation.

use candle_core::quantized::gguf_file;
use candle_core::{bail, Result as CResult};

/// Most transformer blocks a model may declare (the largest open models have about 130).
pub const MAX_LAYERS: usize = 1024;
/// Most attention heads (query or key/value) a model may declare.
pub const MAX_HEADS: usize = 1024;
/// Widest residual stream a model may declare.
pub const MAX_HIDDEN: usize = 65_536;
/// Largest vocabulary a model may declare (about 16 times the largest in use).
pub const MAX_VOCAB: usize = 1 << 22;
/// Longest context a model may declare.
pub const MAX_CONTEXT: usize = 1 << 20;
/// Most entries of the RoPE tables (context x head width), 128 MB of f32: the tables are built
/// at load time for the whole context.
pub const MAX_ROPE_ENTRIES: usize = 1 << 25;

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

    /// A count in `1..=max`.
    fn bounded(&self, key: &str, max: usize) -> CResult<usize> {
        match self.usize(key)? {
            n @ 1.. if n <= max => Ok(n),
            n => bail!("GGUF metadata `{key}` = {n} is outside 1..={max}"),
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

impl LlamaConfig {
    /// Reads and checks the hyper-parameters of a llama GGUF file. The vocabulary size comes
    /// from the shape of `token_embd.weight` in the tensor table (its data is not read here).
    pub(super) fn from_gguf(ct: &gguf_file::Content) -> CResult<Self> {
        let meta = Meta(ct);
        let arch = meta.get("general.architecture")?.to_string()?;
        if arch != "llama" {
            bail!("architecture `{arch}`, expected `llama`");
        }
        let hidden = meta.bounded("llama.embedding_length", MAX_HIDDEN)?;
        let layers = meta.bounded("llama.block_count", MAX_LAYERS)?;
        let heads = meta.bounded("llama.attention.head_count", MAX_HEADS)?;
        let kv_heads = meta.bounded("llama.attention.head_count_kv", MAX_HEADS)?;
        let rms_eps = f64::from(meta.f32("llama.attention.layer_norm_rms_epsilon")?);
        if !(rms_eps.is_finite() && rms_eps > 0.0 && rms_eps < 1.0) {
            bail!("GGUF metadata `llama.attention.layer_norm_rms_epsilon` = {rms_eps} must lie in (0, 1)");
        }
        let rope_theta = match ct.metadata.get("llama.rope.freq_base") {
            Some(_) => meta.f32("llama.rope.freq_base")?,
            None => 10_000.0,
        };
        if !(rope_theta.is_finite() && rope_theta > 1.0) {
            bail!("GGUF metadata `llama.rope.freq_base` = {rope_theta} must be a finite number above 1");
        }
        let context_length = meta.bounded("llama.context_length", MAX_CONTEXT)?;
        if hidden % heads != 0 || heads % kv_heads != 0 {
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
        if context_length.saturating_mul(head_dim) > MAX_ROPE_ENTRIES {
            bail!(
                "context length {context_length} x head width {head_dim} exceeds the RoPE table \
                 bound of {MAX_ROPE_ENTRIES} entries"
            );
        }
        let vocab_size = match ct.tensor_infos.get("token_embd.weight") {
            Some(info) => match info.shape.dims() {
                &[vocab, width] if width == hidden => vocab,
                dims => bail!("token_embd has shape {dims:?}, expected (vocab, {hidden})"),
            },
            None => bail!("GGUF has no tensor token_embd.weight"),
        };
        if vocab_size == 0 || vocab_size > MAX_VOCAB {
            bail!("vocabulary of {vocab_size} tokens, expected 1 to {MAX_VOCAB}");
        }
        let last_block = format!("blk.{}.attn_q.weight", layers - 1);
        if !ct.tensor_infos.contains_key(&last_block) {
            bail!("the metadata declares {layers} blocks, but there is no tensor {last_block}");
        }
        Ok(LlamaConfig {
            vocab_size,
            hidden,
            layers,
            heads,
            kv_heads,
            head_dim,
            rope_theta,
            rms_eps,
            context_length,
        })
    }
}
