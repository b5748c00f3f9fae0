//! The hyper-parameters of a trainable llama, read from a GGUF file's metadata or chosen for a
//! small random model.

use candle_core::quantized::gguf_file;

use super::{NeuralError, Result};

/// Shapes and constants of a llama-architecture model.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuralConfig {
    /// Token ids (rows of the embedding, columns of the logits; the two are tied).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: usize,
    /// Width of the MLP.
    pub ffn: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f64,
    /// Longest sequence (written to the GGUF; the RoPE tables cover it).
    pub context_length: usize,
}

impl NeuralConfig {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }

    /// Refuses shapes the forward pass cannot run.
    pub fn check(&self) -> Result<()> {
        let ok = self.vocab_size > 0
            && self.layers > 0
            && self.heads > 0
            && self.kv_heads > 0
            && self.hidden.is_multiple_of(self.heads)
            && self.heads.is_multiple_of(self.kv_heads)
            && self.head_dim().is_multiple_of(2)
            && self.ffn > 0
            && self.context_length > 0
            && self.rope_theta > 1.0
            && self.rms_eps > 0.0;
        match ok {
            true => Ok(()),
            false => Err(NeuralError::Input(format!(
                "inconsistent llama shapes: {self:?}"
            ))),
        }
    }

    /// Reads the hyper-parameters of a llama GGUF file (the file's tensors set the vocabulary
    /// and the MLP width).
    pub fn from_gguf(ct: &gguf_file::Content, path: &str) -> Result<Self> {
        let bad = |message: String| NeuralError::Gguf {
            path: path.to_string(),
            message,
        };
        let meta = |key: &str| {
            ct.metadata
                .get(key)
                .ok_or_else(|| bad(format!("no `{key}`")))
        };
        let count = |key: &str| -> Result<usize> {
            let v = meta(key)?
                .to_u32()
                .map_err(|e| bad(format!("`{key}`: {e}")))?;
            Ok(v as usize)
        };
        let float = |key: &str| -> Result<f32> {
            meta(key)?
                .to_f32()
                .map_err(|e| bad(format!("`{key}`: {e}")))
        };
        let dims = |name: &str| -> Result<Vec<usize>> {
            match ct.tensor_infos.get(name) {
                Some(info) => Ok(info.shape.dims().to_vec()),
                None => Err(bad(format!("no tensor {name}"))),
            }
        };
        let vocab_size = dims("token_embd.weight")?[0];
        let ffn = dims("blk.0.ffn_gate.weight")?[0];
        let config = NeuralConfig {
            vocab_size,
            hidden: count("llama.embedding_length")?,
            layers: count("llama.block_count")?,
            heads: count("llama.attention.head_count")?,
            kv_heads: count("llama.attention.head_count_kv")?,
            ffn,
            rope_theta: match ct.metadata.contains_key("llama.rope.freq_base") {
                true => float("llama.rope.freq_base")?,
                false => 10_000.0,
            },
            rms_eps: f64::from(float("llama.attention.layer_norm_rms_epsilon")?),
            context_length: count("llama.context_length")?,
        };
        config.check().map_err(|e| bad(e.to_string()))?;
        Ok(config)
    }

    /// The metadata a GGUF file of this model needs (architecture and shapes), for a model that
    /// has no file of its own to copy them from.
    pub fn gguf_metadata(&self) -> Vec<(String, gguf_file::Value)> {
        use gguf_file::Value;
        vec![
            ("general.architecture".into(), Value::String("llama".into())),
            (
                "llama.embedding_length".into(),
                Value::U32(self.hidden as u32),
            ),
            ("llama.block_count".into(), Value::U32(self.layers as u32)),
            (
                "llama.attention.head_count".into(),
                Value::U32(self.heads as u32),
            ),
            (
                "llama.attention.head_count_kv".into(),
                Value::U32(self.kv_heads as u32),
            ),
            (
                "llama.feed_forward_length".into(),
                Value::U32(self.ffn as u32),
            ),
            ("llama.rope.freq_base".into(), Value::F32(self.rope_theta)),
            (
                "llama.rope.dimension_count".into(),
                Value::U32(self.head_dim() as u32),
            ),
            (
                "llama.attention.layer_norm_rms_epsilon".into(),
                Value::F32(self.rms_eps as f32),
            ),
            (
                "llama.context_length".into(),
                Value::U32(self.context_length as u32),
            ),
        ]
    }
}
