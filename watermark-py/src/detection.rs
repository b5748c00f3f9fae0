//! Detection: token ids (one document, a batch, or Arrow's flat layout) scored by the core,
//! with the GIL released while scoring.

use pyo3::prelude::*;
use watermark_core::TextTokenizer;
use watermark_core::TupleSet as CoreTupleSet;
use watermark_core::{detect, detect_in_corpus, DetectOptions};
use watermark_core::{Error, GreenList};

use crate::errors::{core, input_err, py_err};
use crate::scores::Detection;
use crate::tuple_set::TupleSet;

/// One document, `tokens` written after `prompt`.
pub(crate) fn detect_ids(
    py: Python<'_>,
    green: &GreenList,
    tokens: &[u32],
    prompt: Option<&[u32]>,
    options: &DetectOptions,
) -> PyResult<Detection> {
    py.detach(|| core(detect(green, prompt.unwrap_or(&[]), tokens, options)))
        .map(Detection)
}

/// One text, tokenized by `tokenizer`.
pub(crate) fn detect_text(
    py: Python<'_>,
    green: &GreenList,
    tokenizer: &TextTokenizer,
    text: &str,
    prompt: Option<&str>,
    options: &DetectOptions,
) -> PyResult<Detection> {
    py.detach(|| {
        let ids = core(tokenizer.encode(text))?;
        // An empty prompt is no prompt, as in the CLI.
        let prompt = match prompt {
            Some(p) if !p.trim().is_empty() => core(tokenizer.encode(p))?,
            _ => Vec::new(),
        };
        core(detect(green, &prompt, &ids, options))
    })
    .map(Detection)
}

/// The documents of Arrow's `list<uint32>` layout: all ids in `values`, document `i` at
/// `values[offsets[i]..offsets[i + 1]]`.
pub(crate) fn documents_of_flat(values: &[u32], offsets: &[i64]) -> PyResult<Vec<Vec<u32>>> {
    if offsets.is_empty() {
        return Err(input_err("offsets must have at least one entry".into()));
    }
    let mut docs = Vec::with_capacity(offsets.len() - 1);
    for pair in offsets.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a < 0 || b < a || b as u64 > values.len() as u64 {
            return Err(input_err(format!(
                "offsets {a}..{b} are not a valid range of the {} values",
                values.len()
            )));
        }
        docs.push(values[a as usize..b as usize].to_vec());
    }
    Ok(docs)
}

/// How the documents of a batch share their (seed, token) tuples.
pub(crate) enum Dedup<'a> {
    /// Each document is scored on its own.
    PerDocument,
    /// Each tuple counts once in this batch.
    Batch,
    /// Each tuple counts once across every call given this set.
    Shared(&'a TupleSet),
}

/// Scores many documents (with their prompts, when given: one per document).
pub(crate) fn score_documents(
    py: Python<'_>,
    green: &GreenList,
    docs: &[Vec<u32>],
    prompts: Option<&[Vec<u32>]>,
    options: &DetectOptions,
    dedup: Dedup<'_>,
) -> PyResult<Vec<Detection>> {
    if let Some(p) = prompts {
        if p.len() != docs.len() {
            return Err(py_err(Error::BatchShape(format!(
                "{} documents but {} prompts",
                docs.len(),
                p.len()
            ))));
        }
    }
    let prompt_of = |i: usize| prompts.map_or(&[][..], |p| &p[i]);
    let run = |set: Option<&mut CoreTupleSet>| -> PyResult<Vec<Detection>> {
        match set {
            None => docs
                .iter()
                .enumerate()
                .map(|(i, d)| core(detect(green, prompt_of(i), d, options)).map(Detection))
                .collect(),
            Some(set) => {
                set.reserve(docs.iter().map(Vec::len).sum());
                docs.iter()
                    .enumerate()
                    .map(|(i, d)| {
                        core(detect_in_corpus(green, prompt_of(i), d, options, set)).map(Detection)
                    })
                    .collect()
            }
        }
    };
    match dedup {
        // The shared set is locked with the GIL released (see `TupleSet::lock`).
        Dedup::Shared(shared) => py.detach(|| run(Some(&mut *shared.lock()?))),
        Dedup::Batch => py.detach(|| run(Some(&mut CoreTupleSet::default()))),
        Dedup::PerDocument => py.detach(|| run(None)),
    }
}
