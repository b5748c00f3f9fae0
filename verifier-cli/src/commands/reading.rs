//! Reading mode of `tracemark audit`: the suspect model (a GGUF file or a Hugging Face
//! checkpoint) reads our texts. With the profile's tokenizer its top-1 at every position is
//! scored as is; with another tokenizer its predictions are mapped onto ours through the text
//! (`tracemark_model::align`).

use std::path::Path;

use anyhow::{Context, Result};
use tracemark_model::align::CrossReader;
use tracemark_model::reading::top1_predictions;
use tracemark_model::SuspectModel;
use watermark_core::{Audit, ProfileSession, TextTokenizer};

use super::audit::{Encoder, PromptForm};
use crate::input::{Content, Document};

/// The suspect model and, when it is not the profile's, its tokenizer.
pub(super) struct Suspect {
    model: SuspectModel,
    other_tokenizer: Option<TextTokenizer>,
}

impl Suspect {
    /// Loads the suspect at `path`, its tokenizer first: a tokenizer that cannot be read is
    /// refused before the weights are.
    pub fn load(path: &Path, session: &ProfileSession, threads: Option<usize>) -> Result<Self> {
        Self::load_checked(
            path,
            |found| session.profile().check_tokenizer(found),
            threads,
        )
    }

    /// [`Suspect::load`] for a profile that checks a tokenizer's fingerprint with `check`.
    pub fn load_checked(
        path: &Path,
        check: impl FnOnce(&str) -> watermark_core::Result<()>,
        threads: Option<usize>,
    ) -> Result<Self> {
        if let Some(n) = threads {
            tracemark_model::llama::set_threads(n)?;
        }
        let tokenizer = SuspectModel::tokenizer(path)
            .with_context(|| format!("{}: the suspect's tokenizer", path.display()))?;
        let other_tokenizer = match check(tokenizer.fingerprint()) {
            Ok(()) => None,
            Err(watermark_core::Error::TokenizerMismatch { found, expected }) => {
                Some((tokenizer, found, expected))
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("{}: the suspect's tokenizer", path.display()))
            }
        };
        let options = tracemark_model::llama::LoadOptions::default();
        let (model, _) = SuspectModel::load(path, &options)?;
        // Said once the model has loaded, so that a refusal stays one line.
        let other_tokenizer = other_tokenizer.map(|(tokenizer, found, expected)| {
            eprintln!(
                "note: the suspect's tokenizer ({found}) is not the profile's ({expected}): its \
                 predictions are mapped onto the profile's tokens through the text"
            );
            tokenizer
        });
        Ok(Suspect {
            model,
            other_tokenizer,
        })
    }

    /// Reads one of our texts: the suspect's predictions at each of its positions.
    pub fn read(&self, answer: Document, encoder: &mut Encoder) -> Result<Reading> {
        let Some(theirs) = &self.other_tokenizer else {
            let (prompt, text) = encoder.encode(answer, PromptForm::Chat)?;
            let predictions = top1_predictions(&self.model, &prompt, &text)?;
            return Ok(Reading::Full {
                prompt,
                text,
                predictions,
            });
        };
        let ours = encoder.tokenizer()?;
        let (context, text) = context_and_text(answer, ours)?;
        let prompt = ours.encode_fragment(&context)?;
        let read = CrossReader::new(&self.model, theirs, ours).predictions(&context, &text)?;
        Ok(Reading::Aligned {
            prompt,
            text,
            predictions: read.predictions,
        })
    }
}

/// What the suspect predicted over one of our texts (prompt and text as our token ids).
pub(super) enum Reading {
    /// With the profile's tokenizer: a prediction at every position.
    Full {
        prompt: Vec<u32>,
        text: Vec<u32>,
        predictions: Vec<u32>,
    },
    /// With another tokenizer: a prediction where one maps onto one of our tokens.
    Aligned {
        prompt: Vec<u32>,
        text: Vec<u32>,
        predictions: Vec<Option<u32>>,
    },
}

impl Reading {
    /// Our prompt and text, and the suspect's prediction at each position of the text (`None`
    /// where it maps to none of our tokens).
    pub fn into_aligned(self) -> (Vec<u32>, Vec<u32>, Vec<Option<u32>>) {
        match self {
            Reading::Full {
                prompt,
                text,
                predictions,
            } => (prompt, text, predictions.into_iter().map(Some).collect()),
            Reading::Aligned {
                prompt,
                text,
                predictions,
            } => (prompt, text, predictions),
        }
    }

    /// Adds the predictions to `audit`.
    pub fn add_to(&self, audit: &mut Audit) -> Result<()> {
        match self {
            Reading::Full {
                prompt,
                text,
                predictions,
            } => audit.add_reading(prompt, text, predictions)?,
            Reading::Aligned {
                prompt,
                text,
                predictions,
            } => audit.add_reading_aligned(prompt, text, predictions)?,
        }
        Ok(())
    }
}

/// One of our texts as a suspect with another tokenizer reads it: the context as text (a text
/// prompt in the chat template, a prompt of ids decoded) and our token ids of the text.
pub(crate) fn context_and_text(
    answer: Document,
    ours: &TextTokenizer,
) -> Result<(String, Vec<u32>)> {
    let context = match answer.prompt {
        Some(Content::Text(text)) if text.trim().is_empty() => String::new(),
        Some(Content::Text(text)) => tracemark_model::chat_prompt(None, &text),
        Some(Content::Tokens(ids)) => ours.decode(&ids)?,
        None => String::new(),
    };
    let text = match answer.body {
        Content::Tokens(ids) => ids,
        Content::Text(text) => ours.encode_fragment(&text)?,
    };
    Ok((context, text))
}
