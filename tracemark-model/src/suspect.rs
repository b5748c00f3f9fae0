//! The model an audit reads with: a GGUF file or a Hugging Face checkpoint directory, chosen
//! by what the path is, with the tokenizer that comes with it.

use std::path::Path;

use candle_core::Tensor;
use watermark_core::TextTokenizer;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::llama::{Llama, LoadOptions};
use crate::reading::SequenceLogits;
use crate::tokenizer::GgufTokenizer;

/// A suspect model loaded for reading mode.
#[derive(Debug)]
pub enum SuspectModel {
    /// A GGUF file, run by the crate's own llama.
    Gguf(Box<Llama>),
    /// A Hugging Face checkpoint directory, run by candle-transformers.
    Checkpoint(Box<Checkpoint>),
}

impl SuspectModel {
    /// Loads `path`: a directory is a Hugging Face checkpoint (`options` does not apply, its
    /// weights run in f32), anything else a GGUF file loaded with `options`. Returns the model
    /// with its tokenizer, whose fingerprint the caller compares with the profile's.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<(Self, TextTokenizer)> {
        if path.is_dir() {
            let (checkpoint, tokenizer) = Checkpoint::load(path)?;
            return Ok((SuspectModel::Checkpoint(Box::new(checkpoint)), tokenizer));
        }
        let tokenizer = Self::tokenizer(path)?;
        Ok((
            SuspectModel::Gguf(Box::new(Llama::load(path, options)?)),
            tokenizer,
        ))
    }

    /// The tokenizer of the suspect at `path` (a checkpoint's `tokenizer.json`, or the one a GGUF
    /// file's metadata describes) without its weights, so that a suspect the profile cannot
    /// score is refused before its weights are read.
    pub fn tokenizer(path: &Path) -> Result<TextTokenizer> {
        if path.is_dir() {
            return Checkpoint::tokenizer(path);
        }
        GgufTokenizer::from_file(path)?.text_tokenizer()
    }
}

impl SequenceLogits for SuspectModel {
    fn forward_all(&self, tokens: &[u32]) -> Result<Tensor> {
        match self {
            SuspectModel::Gguf(model) => model.forward_all(tokens),
            SuspectModel::Checkpoint(model) => model.forward_all(tokens),
        }
    }
}
