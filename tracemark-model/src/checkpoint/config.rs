//! `config.json` of a Hugging Face checkpoint: which family it is (llama or Qwen2) and its
//! hyper-parameters, checked against limits before anything is allocated.
//!
//! The suspect supplies the checkpoint, so every number is bounded: a hostile config must not
//! make the loader reserve terabytes for RoPE tables or loop over a billion layers. The weights
//! themselves are bounded by the files (every tensor must be there, with the shape the config
//! implies, before any is read).

use candle_transformers::models::{llama, qwen2};
use serde::Deserialize;

/// Widest residual stream accepted (the largest open models use 16,384).
pub const MAX_HIDDEN: usize = 1 << 16;
/// Widest feed-forward layer accepted.
pub const MAX_INTERMEDIATE: usize = 1 << 18;
/// Most transformer blocks accepted.
pub const MAX_LAYERS: usize = 1 << 10;
/// Most attention heads accepted.
pub const MAX_HEADS: usize = 1 << 10;
/// Largest vocabulary accepted.
pub const MAX_VOCAB: usize = 1 << 21;
/// Longest context accepted (its RoPE tables are also bounded by [`MAX_ROPE_ENTRIES`]).
pub const MAX_POSITIONS: usize = 1 << 20;
/// Most RoPE table entries (positions x half a head) built at load time, the bound the GGUF
/// loader uses too.
pub const MAX_ROPE_ENTRIES: usize = 1 << 25;

/// The model families the loader runs, with the configuration candle-transformers needs.
#[derive(Debug, Clone)]
pub enum Family {
    /// `LlamaForCausalLM` (SmolLM2, Llama 2/3, ...): candle-transformers' `models::llama`.
    Llama(llama::Config),
    /// `Qwen2ForCausalLM`: candle-transformers' `models::qwen2`.
    Qwen2(qwen2::Config),
}

/// What the loader needs from `config.json`, whatever the family.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The family and its candle configuration.
    pub family: Family,
    /// Rows of the embedding, columns of the logits.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the feed-forward layer.
    pub intermediate: usize,
    /// Number of transformer blocks.
    pub layers: usize,
    /// Number of query heads.
    pub heads: usize,
    /// Number of key/value heads.
    pub kv_heads: usize,
    /// Whether the output projection is the embedding (no `lm_head.weight`).
    pub tied_embeddings: bool,
    /// Longest sequence the model reads.
    pub max_positions: usize,
    /// Tokens that end a generated text (`eos_token_id`: one id or a list; may be empty).
    pub eos_token_ids: Vec<u32>,
}

/// The fields of `config.json` that name the family, read first: another family's config
/// lacks the fields below, and its name is the clearer refusal.
#[derive(Debug, Deserialize)]
struct Names {
    architectures: Option<Vec<String>>,
    model_type: Option<String>,
}

/// The fields of `config.json` the loader reads; the rest is ignored.
#[derive(Debug, Deserialize)]
struct RawConfig {
    hidden_size: usize,
    intermediate_size: usize,
    vocab_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    max_position_embeddings: usize,
    tie_word_embeddings: Option<bool>,
    hidden_act: Option<String>,
    rope_scaling: Option<serde_json::Value>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    max_window_layers: Option<usize>,
    eos_token_id: Option<serde_json::Value>,
}

/// Parses and checks `config.json`; the error is one line naming what is wrong.
pub fn parse(bytes: &[u8]) -> Result<CheckpointConfig, String> {
    let names: Names = serde_json::from_slice(bytes).map_err(|e| format!("config.json: {e}"))?;
    let family_name = family_name(&names)?;
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| format!("config.json: {e}"))?;
    check_numbers(&raw)?;
    let kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
    if let Some(act) = raw.hidden_act.as_deref().filter(|a| *a != "silu") {
        return Err(format!("hidden_act '{act}' is not supported (only silu)"));
    }
    // transformers' default for both families: an output projection of its own.
    let tied_embeddings = raw.tie_word_embeddings.unwrap_or(false);
    let family = match family_name {
        FamilyName::Llama => Family::Llama(llama_config(&raw, kv_heads, tied_embeddings)?),
        FamilyName::Qwen2 => Family::Qwen2(qwen2_config(&raw, kv_heads, tied_embeddings)),
    };
    Ok(CheckpointConfig {
        family,
        vocab_size: raw.vocab_size,
        hidden: raw.hidden_size,
        intermediate: raw.intermediate_size,
        layers: raw.num_hidden_layers,
        heads: raw.num_attention_heads,
        kv_heads,
        tied_embeddings,
        max_positions: raw.max_position_embeddings,
        eos_token_ids: eos_token_ids(raw.eos_token_id.as_ref(), raw.vocab_size)?,
    })
}

/// `eos_token_id` as ids: absent or null is none, else one id or a list of ids in the vocabulary.
fn eos_token_ids(value: Option<&serde_json::Value>, vocab_size: usize) -> Result<Vec<u32>, String> {
    let one = |v: &serde_json::Value| -> Result<u32, String> {
        v.as_u64()
            .filter(|&id| id < vocab_size as u64)
            .map(|id| id as u32)
            .ok_or_else(|| {
                format!("eos_token_id: {v} is not a token id below vocab_size {vocab_size}")
            })
    };
    match value {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(ids)) if ids.len() <= 64 => ids.iter().map(one).collect(),
        Some(serde_json::Value::Array(ids)) => {
            Err(format!("eos_token_id: {} ids, more than 64", ids.len()))
        }
        Some(v) => Ok(vec![one(v)?]),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyName {
    Llama,
    Qwen2,
}

/// The family from `architectures` (the class transformers instantiates), else `model_type`.
fn family_name(raw: &Names) -> Result<FamilyName, String> {
    if let Some(arch) = raw.architectures.as_ref().and_then(|a| a.first()) {
        return match arch.as_str() {
            "LlamaForCausalLM" => Ok(FamilyName::Llama),
            "Qwen2ForCausalLM" => Ok(FamilyName::Qwen2),
            other => Err(format!(
                "unsupported architecture '{}' (supported: LlamaForCausalLM, Qwen2ForCausalLM)",
                other.escape_debug()
            )),
        };
    }
    match raw.model_type.as_deref() {
        Some("llama") => Ok(FamilyName::Llama),
        Some("qwen2") => Ok(FamilyName::Qwen2),
        Some(other) => Err(format!(
            "unsupported model_type '{}' (supported: llama, qwen2)",
            other.escape_debug()
        )),
        None => Err("config.json names no architecture (architectures or model_type)".into()),
    }
}

/// Bounds every size before anything is allocated from it.
fn check_numbers(raw: &RawConfig) -> Result<(), String> {
    let bounded = [
        ("hidden_size", raw.hidden_size, MAX_HIDDEN),
        ("intermediate_size", raw.intermediate_size, MAX_INTERMEDIATE),
        ("vocab_size", raw.vocab_size, MAX_VOCAB),
        ("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS),
        ("num_attention_heads", raw.num_attention_heads, MAX_HEADS),
        (
            "max_position_embeddings",
            raw.max_position_embeddings,
            MAX_POSITIONS,
        ),
    ];
    for (name, value, max) in bounded {
        if value == 0 || value > max {
            return Err(format!("{name} {value} is outside 1..={max}"));
        }
    }
    let heads = raw.num_attention_heads;
    let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(format!(
            "num_key_value_heads {kv_heads} does not divide num_attention_heads {heads}"
        ));
    }
    let head_dim = raw.hidden_size / heads;
    if !raw.hidden_size.is_multiple_of(heads) || !head_dim.is_multiple_of(2) {
        return Err(format!(
            "hidden_size {} is not an even head width times num_attention_heads {heads}",
            raw.hidden_size
        ));
    }
    if let Some(declared) = raw.head_dim.filter(|&d| d != head_dim) {
        return Err(format!(
            "head_dim {declared} differs from hidden_size / num_attention_heads = {head_dim} (not supported)"
        ));
    }
    // Both candle models tabulate RoPE for every position at load time.
    if raw.max_position_embeddings * (head_dim / 2) > MAX_ROPE_ENTRIES {
        return Err(format!(
            "max_position_embeddings {} x head width {head_dim} needs RoPE tables over {MAX_ROPE_ENTRIES} entries",
            raw.max_position_embeddings
        ));
    }
    if !(raw.rms_norm_eps > 0.0 && raw.rms_norm_eps < 1.0) {
        return Err(format!(
            "rms_norm_eps {} is outside (0, 1)",
            raw.rms_norm_eps
        ));
    }
    if let Some(theta) = raw.rope_theta.filter(|t| !(t.is_finite() && *t > 1.0)) {
        return Err(format!("rope_theta {theta} is not a finite number above 1"));
    }
    Ok(())
}

/// candle-transformers' llama configuration; refuses what its llama does not implement.
fn llama_config(raw: &RawConfig, kv_heads: usize, tied: bool) -> Result<llama::Config, String> {
    if raw.attention_bias == Some(true) || raw.mlp_bias == Some(true) {
        return Err("llama with attention_bias or mlp_bias is not supported".into());
    }
    let rope_scaling = match &raw.rope_scaling {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => {
            let scaling: llama::Llama3RopeConfig = serde_json::from_value(value.clone())
                .map_err(|e| format!("rope_scaling is not supported (only llama3): {e}"))?;
            let factors = [
                scaling.factor,
                scaling.low_freq_factor,
                scaling.high_freq_factor,
            ];
            if factors.iter().any(|f| !(f.is_finite() && *f > 0.0))
                || scaling.high_freq_factor <= scaling.low_freq_factor
            {
                return Err("rope_scaling has non-positive or misordered factors".into());
            }
            Some(scaling)
        }
    };
    Ok(llama::Config {
        hidden_size: raw.hidden_size,
        intermediate_size: raw.intermediate_size,
        vocab_size: raw.vocab_size,
        num_hidden_layers: raw.num_hidden_layers,
        num_attention_heads: raw.num_attention_heads,
        num_key_value_heads: kv_heads,
        use_flash_attn: false,
        rms_norm_eps: raw.rms_norm_eps,
        rope_theta: raw.rope_theta.unwrap_or(10_000.0) as f32,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling,
        max_position_embeddings: raw.max_position_embeddings,
        tie_word_embeddings: tied,
    })
}

/// candle-transformers' Qwen2 configuration. Without `use_sliding_window` the window is the
/// whole context, as in transformers (candle always applies `sliding_window`).
fn qwen2_config(raw: &RawConfig, kv_heads: usize, tied: bool) -> qwen2::Config {
    let use_sliding_window = raw.use_sliding_window.unwrap_or(false);
    let sliding_window = match raw.sliding_window {
        Some(window) if use_sliding_window => window,
        _ => raw.max_position_embeddings,
    };
    qwen2::Config {
        vocab_size: raw.vocab_size,
        hidden_size: raw.hidden_size,
        intermediate_size: raw.intermediate_size,
        num_hidden_layers: raw.num_hidden_layers,
        num_attention_heads: raw.num_attention_heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: raw.max_position_embeddings,
        sliding_window,
        max_window_layers: raw.max_window_layers.unwrap_or(raw.num_hidden_layers),
        tie_word_embeddings: tied,
        rope_theta: raw.rope_theta.unwrap_or(1_000_000.0),
        rms_norm_eps: raw.rms_norm_eps,
        use_sliding_window,
        hidden_act: candle_nn::Activation::Silu,
    }
}

impl CheckpointConfig {
    /// Every tensor the family's candle model reads, with its shape (rows, columns for a matrix,
    /// as stored by PyTorch): checked in the files before loading, so that a missing or
    /// misshapen tensor is one clear error, not a panic inside candle-transformers.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i) = (self.hidden, self.intermediate);
        let head_dim = h / self.heads;
        let q = self.heads * head_dim;
        let kv = self.kv_heads * head_dim;
        let biases = matches!(self.family, Family::Qwen2(_));
        let mut tensors = vec![
            (
                "model.embed_tokens.weight".to_string(),
                vec![self.vocab_size, h],
            ),
            ("model.norm.weight".to_string(), vec![h]),
        ];
        if !self.tied_embeddings {
            tensors.push(("lm_head.weight".into(), vec![self.vocab_size, h]));
        }
        for layer in 0..self.layers {
            let p = format!("model.layers.{layer}");
            let mut add = |name: &str, shape: Vec<usize>| {
                tensors.push((format!("{p}.{name}"), shape));
            };
            add("input_layernorm.weight", vec![h]);
            add("post_attention_layernorm.weight", vec![h]);
            add("self_attn.q_proj.weight", vec![q, h]);
            add("self_attn.k_proj.weight", vec![kv, h]);
            add("self_attn.v_proj.weight", vec![kv, h]);
            add("self_attn.o_proj.weight", vec![h, q]);
            if biases {
                add("self_attn.q_proj.bias", vec![q]);
                add("self_attn.k_proj.bias", vec![kv]);
                add("self_attn.v_proj.bias", vec![kv]);
            }
            add("mlp.gate_proj.weight", vec![i, h]);
            add("mlp.up_proj.weight", vec![i, h]);
            add("mlp.down_proj.weight", vec![h, i]);
        }
        tensors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm_like() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": 576, "intermediate_size": 1536, "vocab_size": 49152,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position_embeddings": 8192,
            "tie_word_embeddings": true, "hidden_act": "silu"
        })
    }

    fn parse_value(v: &serde_json::Value) -> Result<CheckpointConfig, String> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn a_llama_config_parses() {
        let config = parse_value(&smollm_like()).unwrap();
        assert!(matches!(config.family, Family::Llama(_)));
        assert_eq!((config.heads, config.kv_heads, config.layers), (9, 3, 30));
        // 2 + 30 blocks of 9 tensors, tied: no lm_head.
        assert_eq!(config.expected_tensors().len(), 2 + 30 * 9);
    }

    #[test]
    fn hostile_numbers_are_refused() {
        for (key, value) in [
            ("hidden_size", serde_json::json!(1u64 << 40)),
            ("num_hidden_layers", serde_json::json!(1_000_000_000)),
            ("vocab_size", serde_json::json!(0)),
            ("max_position_embeddings", serde_json::json!(1 << 21)),
            ("num_key_value_heads", serde_json::json!(2)),
            ("rms_norm_eps", serde_json::json!(-1.0)),
            ("hidden_size", serde_json::json!(-5)),
        ] {
            let mut config = smollm_like();
            config[key] = value.clone();
            let err = parse_value(&config).unwrap_err();
            assert!(!err.contains('\n'), "{err}");
            assert!(
                err.contains(key) || err.contains("config.json"),
                "{key}={value}: {err}"
            );
        }
    }

    #[test]
    fn unknown_families_are_refused_by_name() {
        let mut config = smollm_like();
        config["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
        let err = parse_value(&config).unwrap_err();
        assert!(
            err.contains("unsupported architecture 'GPT2LMHeadModel'"),
            "{err}"
        );
        config.as_object_mut().unwrap().remove("architectures");
        config["model_type"] = serde_json::json!("qwen2");
        assert!(matches!(
            parse_value(&config).unwrap().family,
            Family::Qwen2(_)
        ));
    }
}
