//! Writes a Hugging Face checkpoint directory from a llama GGUF file, for the checkpoint
//! tests: every tensor dequantized to f32, renamed to the transformers names, the query and
//! key rows put back in transformers' order, `config.json` from the GGUF metadata and
//! `tokenizer.json` from its tokenizer. Sharded in two files with an index, like large
//! checkpoints.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use tracemark_model::llama::LlamaConfig;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory `name` under the test target's scratch space.
    pub fn new(scratch: &Path, name: &str) -> TempDir {
        let dir = scratch.join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the scratch directory is writable");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The transformers name of a GGUF tensor name (llama architecture).
fn hf_name(gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").expect("a block tensor");
    let (layer, part) = rest.split_once('.').expect("blk.N.name");
    let part = match part {
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        other => panic!("unexpected GGUF tensor {other}"),
    };
    format!("model.layers.{layer}.{part}")
}

/// Undoes llama.cpp's converter, which reorders each head's query/key rows from
/// transformers' half-split RoPE layout (first half, second half) to interleaved pairs: GGUF
/// row `h*d + 2j + s` is transformers row `h*d + s*d/2 + j`.
fn unpermute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().expect("a matrix");
    let head_dim = rows / heads;
    w.reshape((heads, head_dim / 2, 2, cols))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.contiguous())
        .and_then(|t| t.reshape((rows, cols)))
        .expect("the head layout reshapes")
}

/// Writes the checkpoint of the GGUF model at `gguf` into `dir`; `config` is the model's
/// metadata as the crate read it.
pub fn export(gguf: &Path, config: &LlamaConfig, dir: &Path) {
    let mut file = std::fs::File::open(gguf).expect("the model opens");
    let content = gguf_file::Content::read(&mut file).expect("the GGUF header reads");
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut shards: [HashMap<String, Tensor>; 2] = [HashMap::new(), HashMap::new()];
    let mut weight_map = serde_json::Map::new();
    let mut intermediate = 0;
    for (i, name) in names.iter().enumerate() {
        let tensor = content
            .tensor(&mut file, name, &Device::Cpu)
            .and_then(|q| q.dequantize(&Device::Cpu))
            .expect("the tensor dequantizes");
        let hf = hf_name(name);
        let tensor = if hf.ends_with("q_proj.weight") {
            unpermute(&tensor, config.heads)
        } else if hf.ends_with("k_proj.weight") {
            unpermute(&tensor, config.kv_heads)
        } else {
            tensor
        };
        if hf.ends_with("gate_proj.weight") {
            intermediate = tensor.dims()[0];
        }
        let shard = i % 2;
        weight_map.insert(hf.clone(), shard_name(shard).into());
        shards[shard].insert(hf, tensor);
    }
    for (i, shard) in shards.iter().enumerate() {
        candle_core::safetensors::save(shard, dir.join(shard_name(i))).expect("the shard writes");
    }
    let tied = !content.tensor_infos.contains_key("output.weight");
    let hf_config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.hidden,
        "intermediate_size": intermediate,
        "vocab_size": config.vocab_size,
        "num_hidden_layers": config.layers,
        "num_attention_heads": config.heads,
        "num_key_value_heads": config.kv_heads,
        "rms_norm_eps": config.rms_eps,
        "rope_theta": config.rope_theta,
        "max_position_embeddings": config.context_length,
        "tie_word_embeddings": tied,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    });
    write_json(&dir.join("config.json"), &hf_config);
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    write_json(&dir.join("model.safetensors.index.json"), &index);
    let tokenizer = tracemark_model::GgufTokenizer::from_file(gguf).expect("the tokenizer builds");
    std::fs::write(dir.join("tokenizer.json"), tokenizer.json()).expect("tokenizer.json writes");
}

fn shard_name(i: usize) -> String {
    format!("model-{:05}-of-00002.safetensors", i + 1)
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, value.to_string()).expect("the JSON file writes");
}
