//! The findings of `detect --report`: every document re-read and scored with per-token
//! statuses, each token's text decoded as it reads (not escaped for a terminal).

use anyhow::{Context, Result};
use watermark_core::evidence::{
    skipped_by_rule, DocumentFinding, Findings, Statistics, TokenFinding, WindowFinding,
};
use watermark_core::{detect, DetectOptions, Detection, Error, Fpr, ProfileSession};
use watermark_core::{TextTokenizer, TokenStatus};

use super::{input_file, tokenizer_input, Run};
use crate::commands::detect::{read_documents, DetectArgs};
use crate::input::{Content, Document};

/// Scores `args`' documents again, keeping every token, and names the files read.
pub(crate) fn detect_findings(
    args: &DetectArgs,
    session: &ProfileSession,
    fpr: Fpr,
) -> Result<Run> {
    let mut inputs = Vec::new();
    if args.inputs.is_empty() {
        input_file("document", std::path::Path::new("-"))?;
    }
    for path in &args.inputs {
        inputs.push(input_file("document", path)?);
    }
    let documents = read_documents(args)?;
    // Text needs the tokenizer; token ids are shown decoded with it when the profile has one.
    let tokenizer = if documents.iter().any(Document::needs_tokenizer) {
        Some(crate::commands::tokenizer(session)?)
    } else {
        crate::commands::tokenizer(session).ok()
    };
    if tokenizer.is_some() {
        inputs.extend(tokenizer_input(session)?);
    }
    let options = DetectOptions {
        fpr,
        windowed: args.windowed,
        per_token: true,
        deduplicate: true,
    };
    let documents = documents
        .into_iter()
        .map(|doc| document_finding(doc, session, tokenizer, &options))
        .collect::<Result<Vec<_>>>()?;

    let mut rerun = vec!["detect".to_string(), "--fpr".into(), fpr.get().to_string()];
    if args.windowed {
        rerun.push("--windowed".into());
    }
    if args.jsonl {
        rerun.push("--jsonl".into());
    }
    if let Some(t) = &args.tokenizer {
        rerun.extend(["--tokenizer".into(), t.display().to_string()]);
    }
    rerun.push("--".into());
    rerun.extend(args.inputs.iter().map(|p| p.display().to_string()));
    Ok(Run {
        findings: Findings::Detect { documents },
        inputs,
        rerun,
    })
}

fn document_finding(
    doc: Document,
    session: &ProfileSession,
    tokenizer: Option<&TextTokenizer>,
    options: &DetectOptions,
) -> Result<DocumentFinding> {
    let source = doc.source;
    let encode = |content: Content| -> Result<Vec<u32>> {
        match content {
            Content::Tokens(ids) => Ok(ids),
            Content::Text(text) => Ok(tokenizer.ok_or(Error::NoTokenizer)?.encode(&text)?),
        }
    };
    let text_body = matches!(doc.body, Content::Text(_));
    let prompt = match doc.prompt {
        Some(Content::Text(p)) if p.trim().is_empty() => Vec::new(),
        Some(p) => encode(p).with_context(|| format!("{source}: prompt"))?,
        None => Vec::new(),
    };
    let ids = encode(doc.body).with_context(|| source.clone())?;
    let detection =
        detect(session.green_list(), &prompt, &ids, options).with_context(|| source.clone())?;
    let texts = pieces(&ids, tokenizer, text_body).with_context(|| source.clone())?;
    let statuses = detection.token_statuses.clone().unwrap_or_default();
    let tokens = texts
        .into_iter()
        .zip(statuses)
        .map(|(text, status)| TokenFinding {
            text,
            status: status_name(status).to_string(),
        })
        .collect();
    Ok(DocumentFinding {
        verdict: verdict(&detection).to_string(),
        statistics: Statistics::of(&detection.header),
        skipped: skipped_by_rule(&detection.ignored),
        window: detection.windowed.as_ref().map(|w| WindowFinding {
            start: w.start,
            end: w.end,
            scored: w.score.scored,
            green: w.score.green,
            corrected_log10_p_value: w.corrected_log10_p_value,
            windows_tried: w.windows_tried,
            watermarked: w.watermarked,
        }),
        tokens,
        source,
        id: doc.id,
    })
}

/// Each token's text: decoded when the document was text, or when it was token ids and the
/// profile's tokenizer is at hand (`readable`); else its id and a space.
fn pieces(ids: &[u32], tokenizer: Option<&TextTokenizer>, text_body: bool) -> Result<Vec<String>> {
    let ids_only = || ids.iter().map(|id| format!("{id} ")).collect();
    match tokenizer {
        Some(tok) => match ids.iter().map(|&id| tok.decode(&[id])).collect() {
            Ok(texts) => Ok(texts),
            Err(e) if text_body => Err(e.into()),
            Err(_) => Ok(ids_only()),
        },
        None => Ok(ids_only()),
    }
}

fn verdict(d: &Detection) -> &'static str {
    if d.header.score.scored == 0 {
        "nothing to score"
    } else if d.header.watermarked {
        "watermarked"
    } else if d.windowed.as_ref().is_some_and(|w| w.watermarked) {
        "watermarked (window)"
    } else {
        "not watermarked"
    }
}

/// The status as `--json` names it.
pub(crate) fn status_name(status: TokenStatus) -> &'static str {
    match status {
        TokenStatus::Green => "green",
        TokenStatus::Red => "red",
        TokenStatus::TooLittleContext => "too_little_context",
        TokenStatus::Repeated => "repeated",
        TokenStatus::InPrompt => "in_prompt",
        TokenStatus::EarlierInText => "earlier_in_text",
        TokenStatus::NotInFilter => "not_in_filter",
        TokenStatus::Unaligned => "unaligned",
    }
}
