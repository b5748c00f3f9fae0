//! Reading a pretrained llama from a GGUF file into trainable f32 tensors, and writing a trained
//! one back as a GGUF file the inference llama (and so the audit) loads.

use std::path::Path;

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::model::{Linear, RawWeights};
use super::{NeuralConfig, NeuralError, NeuralLlama, Result, Tuning};

/// How the matrices of a saved student are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SavedDType {
    /// 8-bit blocks: the format `tracemark_model`'s loader converts every matrix to by default,
    /// so a student saved in Q8_0 runs exactly as one saved in f32, at a quarter of the size.
    Q8_0,
    /// The trained f32 weights, unrounded.
    F32,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> NeuralError + '_ {
    move |source| NeuralError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Loads a llama GGUF file (SmolLM2) as a trainable model, every tensor dequantized to f32.
/// The output matrix must be tied to the embedding (no `output.weight`), as in SmolLM2.
pub fn load_pretrained(path: &Path, tuning: Tuning, seed: u64) -> Result<NeuralLlama> {
    let shown = path.display().to_string();
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    let ct = gguf_file::Content::read(&mut file).map_err(|e| NeuralError::Gguf {
        path: shown.clone(),
        message: e.to_string(),
    })?;
    let config = NeuralConfig::from_gguf(&ct, &shown)?;
    if ct.tensor_infos.contains_key("output.weight") {
        return Err(NeuralError::Gguf {
            path: shown,
            message: "an untied output matrix is not supported (SmolLM2 ties it)".into(),
        });
    }
    let dev = Device::Cpu;
    let mut read = |name: &str| -> Result<Tensor> {
        let q = ct
            .tensor(&mut file, name, &dev)
            .map_err(|e| NeuralError::Gguf {
                path: shown.clone(),
                message: format!("{name}: {e}"),
            })?;
        Ok(q.dequantize(&dev)?)
    };
    let embed = read("token_embd.weight")?;
    let norm = read("output_norm.weight")?;
    let mut blocks = Vec::with_capacity(config.layers);
    for i in 0..config.layers {
        let mut t = |name: &str| read(&format!("blk.{i}.{name}.weight"));
        blocks.push([
            t("attn_norm")?,
            t("attn_q")?,
            t("attn_k")?,
            t("attn_v")?,
            t("attn_output")?,
            t("ffn_norm")?,
            t("ffn_gate")?,
            t("ffn_up")?,
            t("ffn_down")?,
        ]);
    }
    let raw = RawWeights {
        embed,
        blocks,
        norm,
    };
    NeuralLlama::from_raw(config, raw, tuning, seed)
}

/// Writes `model` (adapters merged) to `out` as a llama GGUF file: the metadata of `template`
/// (the teacher's file: architecture, shapes and tokenizer) when given, else the model's own
/// shapes only. Norms are stored in f32, matrices and the embedding as `dtype`. Written to a
/// temporary file and renamed, so an interrupted run leaves no half file.
pub fn write_gguf(
    model: &NeuralLlama,
    template: Option<&Path>,
    out: &Path,
    dtype: SavedDType,
) -> Result<()> {
    let metadata: Vec<(String, gguf_file::Value)> = match template {
        Some(path) => {
            let mut file = std::fs::File::open(path).map_err(io(path))?;
            let ct = gguf_file::Content::read(&mut file).map_err(|e| NeuralError::Gguf {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut kv: Vec<_> = ct.metadata.into_iter().collect();
            kv.sort_by(|a, b| a.0.cmp(&b.0));
            kv
        }
        None => model.config.gguf_metadata(),
    };
    let matrix = match dtype {
        SavedDType::Q8_0 => GgmlDType::Q8_0,
        SavedDType::F32 => GgmlDType::F32,
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut put = |name: String, t: &Tensor, dt: GgmlDType| -> Result<()> {
        tensors.push((name, QTensor::quantize(&t.detach().contiguous()?, dt)?));
        Ok(())
    };
    put("token_embd.weight".into(), &model.embed, matrix)?;
    put("output_norm.weight".into(), &model.norm, GgmlDType::F32)?;
    for (i, b) in model.blocks.iter().enumerate() {
        let p = |n: &str| format!("blk.{i}.{n}.weight");
        put(p("attn_norm"), &b.attn_norm, GgmlDType::F32)?;
        put(p("ffn_norm"), &b.ffn_norm, GgmlDType::F32)?;
        let mats: [(&str, &Linear); 7] = [
            ("attn_q", &b.q),
            ("attn_k", &b.k),
            ("attn_v", &b.v),
            ("attn_output", &b.o),
            ("ffn_gate", &b.gate),
            ("ffn_up", &b.up),
            ("ffn_down", &b.down),
        ];
        for (name, lin) in mats {
            put(p(name), &lin.merged()?, matrix)?;
        }
    }
    let tmp = out.with_extension("gguf.tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
    let meta: Vec<(&str, &gguf_file::Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tens: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut w, &meta, &tens)?;
    std::io::Write::flush(&mut w).map_err(io(&tmp))?;
    drop(w);
    std::fs::rename(&tmp, out).map_err(io(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::neural::model::tests::max_diff;

    #[test]
    fn a_saved_model_reads_back_with_the_same_logits() {
        let config = NeuralConfig {
            vocab_size: 64,
            hidden: 64,
            layers: 2,
            heads: 4,
            kv_heads: 2,
            ffn: 96,
            rope_theta: 10_000.0,
            // Exact in f32, as the file stores it.
            rms_eps: 1.0 / 131_072.0,
            context_length: 32,
        };
        let m = NeuralLlama::random(config.clone(), 2).unwrap();
        let dir = std::env::temp_dir().join(format!("tracemark-neural-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.gguf");
        write_gguf(&m, None, &path, SavedDType::F32).unwrap();
        let back = load_pretrained(&path, Tuning::TopBlocks { blocks: 1 }, 1).unwrap();
        assert_eq!(back.config(), &config);
        let tokens = [1, 5, 9, 13, 60];
        let diff = max_diff(
            &m.forward_all(&tokens).unwrap(),
            &back.forward_all(&tokens).unwrap(),
        );
        assert!(diff < 1e-6, "{diff}");
        // The inference llama reads it too.
        let llama = tracemark_model::llama::Llama::load(
            &path,
            &tracemark_model::llama::LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(llama.config().vocab_size, 64);
        std::fs::remove_dir_all(&dir).ok();
        assert!(matches!(
            load_pretrained(&dir.join("missing.gguf"), Tuning::Full, 1),
            Err(NeuralError::Io { .. })
        ));
    }
}
