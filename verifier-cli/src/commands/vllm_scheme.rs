//! `tracemark detect` and `tracemark audit` (closed model) for a profile of the vLLM scheme
//! family (`spec = "vllm-gumbel-philox-v1"`): text written by `vllm serve --watermark-config`
//! is scored with vLLM's own PRF and per-token score, and judged by the exact Gamma tail. The
//! two commands pick this module when the profile's spec names the family.

use std::io::Write;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use watermark_core::vllm::{ContextScope, GumbelScanner, GumbelScore, VllmProfile, VLLM_SCHEME};
use watermark_core::{Fpr, TextTokenizer};

use super::audit::{each_answer, AuditArgs};
use super::detect::{read_documents, DetectArgs};
use crate::exit::ExitStatus;
use crate::input::{Content, Document};
use crate::numbers::{fixed, format_fpr, format_p};

/// The profile, its tokenizer (loaded when some input is text) and the verdict's rate.
struct Setup {
    profile: VllmProfile,
    tokenizer: Option<TextTokenizer>,
    fpr: Fpr,
}

impl Setup {
    fn new(
        profile_path: &std::path::Path,
        tokenizer: Option<&std::path::Path>,
        fpr: Option<f64>,
        needs_tokenizer: bool,
    ) -> Result<Setup> {
        let profile = VllmProfile::load(profile_path)?;
        let fpr = Fpr::new(fpr.unwrap_or(profile.fpr().get())).context("--fpr")?;
        let tokenizer = if needs_tokenizer {
            Some(load_tokenizer(&profile, tokenizer)?)
        } else {
            None
        };
        Ok(Setup {
            profile,
            tokenizer,
            fpr,
        })
    }

    /// A document's prompt and body as token ids.
    fn encode(&self, doc: Document) -> Result<(Vec<u32>, Vec<u32>)> {
        let encode = |content: Content| -> Result<Vec<u32>> {
            match content {
                Content::Tokens(ids) => Ok(ids),
                Content::Text(text) if text.trim().is_empty() => Ok(Vec::new()),
                Content::Text(text) => match &self.tokenizer {
                    Some(tok) => Ok(tok.encode(&text)?),
                    None => bail!("text input needs a tokenizer: pass --tokenizer FILE"),
                },
            }
        };
        let prompt = doc.prompt.map(encode).transpose()?.unwrap_or_default();
        Ok((prompt, encode(doc.body)?))
    }
}

/// `--tokenizer`, else the profile's; checked against the profile's fingerprint when it has one.
fn load_tokenizer(profile: &VllmProfile, given: Option<&std::path::Path>) -> Result<TextTokenizer> {
    let binding = profile.tokenizer.as_ref();
    let path = match (given, binding.and_then(|b| b.path.as_ref())) {
        (Some(path), _) => path.to_path_buf(),
        (None, Some(path)) => profile.resolve(path),
        (None, None) => bail!("text input needs a tokenizer: pass --tokenizer FILE"),
    };
    let tokenizer = TextTokenizer::from_file(&path)?;
    if let Some(binding) = binding {
        if binding.fingerprint != tokenizer.fingerprint() {
            return Err(watermark_core::Error::TokenizerMismatch {
                found: tokenizer.fingerprint().to_string(),
                expected: binding.fingerprint.clone(),
            }
            .into());
        }
    }
    Ok(tokenizer)
}

/// One `--json` line of `detect`, or the report of `audit --json`.
#[derive(Debug, Serialize)]
struct ScoreLine<'a> {
    scheme: &'static str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
    tokens: u64,
    #[serde(flatten)]
    score: &'a GumbelScore,
    fpr: f64,
    watermarked: bool,
    key_fingerprint: &'a str,
}

/// The verdict column.
fn verdict(score: &GumbelScore, fpr: Fpr) -> &'static str {
    if score.scored == 0 {
        "nothing to score"
    } else if score.is_significant(fpr.get()) {
        "WATERMARKED"
    } else {
        "not watermarked"
    }
}

/// `tracemark detect` with a vLLM-scheme profile: one test per document.
pub fn detect(args: &DetectArgs, out: &mut impl Write) -> Result<ExitStatus> {
    if args.windowed || args.tokens || args.report.dir.is_some() {
        bail!("--windowed, --tokens and --report are not available for {VLLM_SCHEME} profiles");
    }
    let documents = read_documents(args)?;
    let needs_tokenizer = documents.iter().any(Document::needs_tokenizer);
    let setup = Setup::new(
        &args.profile,
        args.tokenizer.as_deref(),
        args.fpr,
        needs_tokenizer,
    )?;
    let scanner = setup.profile.scanner()?;
    let mut rows = Vec::new();
    for doc in documents {
        let (source, id) = (doc.source.clone(), doc.id.clone());
        let (prompt, ids) = setup.encode(doc).with_context(|| source.clone())?;
        let mut one = scanner.clone();
        one.add_document(&prompt, &ids);
        rows.push((source, id, ids.len() as u64, one.finish()));
    }
    let fingerprint = &setup.profile.key_fingerprint;
    if args.json {
        for (source, id, tokens, score) in &rows {
            let line = ScoreLine {
                scheme: VLLM_SCHEME,
                source,
                id: id.as_ref(),
                tokens: *tokens,
                score,
                fpr: setup.fpr.get(),
                watermarked: score.is_significant(setup.fpr.get()),
                key_fingerprint: fingerprint,
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
    } else {
        print_table(&rows, setup.fpr, out)?;
    }
    let flagged = rows
        .iter()
        .filter(|r| r.3.is_significant(setup.fpr.get()))
        .count();
    if !args.json {
        writeln!(
            out,
            "{} {}, {flagged} watermarked at FPR {} (vLLM key {fingerprint}, spec {VLLM_SCHEME}, context width {})",
            rows.len(),
            if rows.len() == 1 { "document" } else { "documents" },
            format_fpr(setup.fpr.get()),
            setup.profile.context_width,
        )?;
    }
    let unscored = rows.iter().any(|r| r.3.scored == 0);
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        flagged > 0,
        unscored,
    ))
}

type Row = (String, Option<Value>, u64, GumbelScore);

fn print_table(rows: &[Row], fpr: Fpr, out: &mut impl Write) -> Result<()> {
    let header = [
        "source", "tokens", "scored", "score", "log10 p", "p", "verdict",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|(source, _, tokens, s)| {
            [
                source.clone(),
                tokens.to_string(),
                s.scored.to_string(),
                format!("{:.3}", s.score),
                fixed(s.log10_p_value),
                format_p(s.p_value),
                verdict(s, fpr).to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[&str]| -> String {
        let mut text = String::new();
        for (column, (cell, &width)) in row.iter().zip(&widths).enumerate() {
            if column > 0 {
                text.push_str("  ");
            }
            if column == 0 || column == 6 {
                text.push_str(&format!("{cell:<width$}"));
            } else {
                text.push_str(&format!("{cell:>width$}"));
            }
        }
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(&header))?;
    for row in &cells {
        let refs: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&refs))?;
    }
    Ok(())
}

/// `tracemark audit --suspect OUTPUTS.jsonl` with a vLLM-scheme profile: one pooled test over
/// every answer. The audit's rules hold here too: a context is scored once across the whole
/// audit, and a token whose context occurs in its prompt (what the suspect read) is not scored
/// (vLLM's `all` scope, whatever scope the profile's generator used).
pub fn audit(args: &AuditArgs, out: &mut impl Write) -> Result<ExitStatus> {
    let Some(suspect) = args.suspect.as_ref() else {
        bail!(
            "{VLLM_SCHEME} profiles are audited in closed mode only: give --suspect OUTPUTS.jsonl"
        );
    };
    if args.filter.is_some() || args.curve.is_some() || args.plan || args.report.dir.is_some() {
        bail!(
            "--filter, --curve, --plan and --report are not available for {VLLM_SCHEME} profiles"
        );
    }
    let mut setup = Setup::new(&args.profile, args.tokenizer.as_deref(), args.fpr, false)?;
    let mut profile = setup.profile.clone();
    profile.deduplicate_contexts = ContextScope::All;
    let mut scanner: GumbelScanner = profile.scanner()?;
    let (mut documents, mut tokens) = (0u64, 0u64);
    each_answer(suspect, "auditing", |_, answer| {
        if answer.needs_tokenizer() && setup.tokenizer.is_none() {
            setup.tokenizer = Some(load_tokenizer(&setup.profile, args.tokenizer.as_deref())?);
        }
        let (prompt, response) = setup.encode(answer)?;
        scanner.add_document(&prompt, &response);
        documents += 1;
        tokens += response.len() as u64;
        Ok(())
    })?;
    if documents == 0 {
        bail!("no documents to audit (every line is empty)");
    }
    let score = scanner.finish();
    let watermarked = score.is_significant(setup.fpr.get());
    if args.json {
        let line = ScoreLine {
            scheme: VLLM_SCHEME,
            source: &suspect.display().to_string(),
            id: None,
            tokens,
            score: &score,
            fpr: setup.fpr.get(),
            watermarked,
            key_fingerprint: &setup.profile.key_fingerprint,
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    } else {
        writeln!(
            out,
            "closed-model audit, {VLLM_SCHEME} (vLLM key {}, context width {})",
            setup.profile.key_fingerprint, setup.profile.context_width
        )?;
        writeln!(
            out,
            "{documents} documents, {tokens} tokens, {} scored ({} skipped: repeated, partial or prompt contexts)",
            score.scored, score.skipped
        )?;
        writeln!(
            out,
            "score {:.3} against Gamma({}, 1): log10 p = {}, p = {}",
            score.score,
            score.scored,
            fixed(score.log10_p_value),
            format_p(score.p_value)
        )?;
        writeln!(
            out,
            "verdict at FPR {}: {}",
            format_fpr(setup.fpr.get()),
            verdict(&score, setup.fpr)
        )?;
    }
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        watermarked,
        score.scored == 0,
    ))
}
