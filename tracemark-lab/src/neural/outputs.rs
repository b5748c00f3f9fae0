//! What the audits need from a saved student, computed with the inference llama from its GGUF
//! file and cached beside it: its answers to held-out prompts (closed model) and its top-1
//! predictions over our texts (reading mode).

use std::path::Path;

use sha2::{Digest, Sha256};
use tracemark_model::generate::{GenerateOptions, Generator};
use tracemark_model::llama::LoadOptions;
use tracemark_model::reading::top1_predictions;

use super::{NeuralError, Result};
use crate::radioactivity::Sample;

/// A student's answers and reading-mode predictions.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StudentOutputs {
    /// Its answers to the held-out prompts.
    pub answers: Vec<Sample>,
    /// `predictions[j][i]`: its top-1 for position `i` of text `j`'s answer, read after the
    /// text's prompt.
    pub predictions: Vec<Vec<u32>>,
}

/// Hex of the first 12 bytes of the SHA-256 of `settings` (a cache file name).
pub fn settings_digest(settings: &serde_json::Value) -> String {
    let digest = Sha256::digest(settings.to_string().as_bytes());
    hex::encode(&digest[..12])
}

/// The outputs of the student saved at `model`, read from `cache` when a previous run wrote
/// them for the same settings (`key` names them), else computed and written there.
pub fn student_outputs(
    model: &Path,
    key: &str,
    prompts: &[String],
    texts: &[&Sample],
    generate: &GenerateOptions,
    load: &LoadOptions,
    cache: &Path,
) -> Result<StudentOutputs> {
    let settings = serde_json::json!({
        "student": key,
        "prompts": prompts,
        "texts": texts,
        "max_tokens": generate.max_tokens,
        "sampling": format!("{:?}", generate.sampling),
        "seed": generate.seed,
        "batch_size": generate.batch_size,
        "load": format!("{load:?}"),
    });
    let path = cache.join(format!("outputs-{}.json", settings_digest(&settings)));
    let shown = || path.display().to_string();
    if let Ok(bytes) = std::fs::read(&path) {
        if let Ok(out) = serde_json::from_slice::<StudentOutputs>(&bytes) {
            if out.answers.len() == prompts.len() && out.predictions.len() == texts.len() {
                return Ok(out);
            }
        }
    }
    let generator = Generator::load(model, load)?;
    let answers = generator
        .generate(prompts, None, generate, |_, _| {})?
        .into_iter()
        .map(|c| Sample {
            prompt_ids: c.prompt_ids,
            response_ids: c.completion_ids,
        })
        .collect();
    let predictions = texts
        .iter()
        .map(|s| top1_predictions(generator.model(), &s.prompt_ids, &s.response_ids))
        .collect::<std::result::Result<_, _>>()?;
    let out = StudentOutputs {
        answers,
        predictions,
    };
    let bytes = serde_json::to_vec(&out).map_err(|e| NeuralError::Input(e.to_string()))?;
    let tmp = path.with_extension("json.tmp");
    let io = |source| NeuralError::Io {
        path: shown(),
        source,
    };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(out)
}
