//! `tracemark detect` and `tracemark audit` (closed model and reading mode) for a profile of the
//! vLLM scheme family (`spec = "vllm-gumbel-philox-v1"`, algorithm `gumbel` or
//! `dual_key_gumbel`): text written by `vllm serve --watermark-config` is scored with vLLM's own
//! PRF and per-token score, and judged by the exact null tail. The two commands pick this module
//! when the profile's spec names the family; the rules live in `watermark_core::vllm`, and this
//! module only converts input and prints.

use std::io::Write;

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::Value;
use watermark_core::vllm::{
    ContextScope, GumbelScanner, GumbelScore, ReadingReport, VllmAlgorithm, VllmProfile,
    DEFAULT_ALPHA, VLLM_SCHEME,
};
use watermark_core::{Fpr, TextTokenizer};

use super::audit::{each_answer, AuditArgs, Encoder};
use super::detect::{read_documents, DetectArgs};
use super::reading::Suspect;
use crate::exit::ExitStatus;
use crate::input::{Content, Document};
use crate::numbers::{fixed, format_fpr, format_p, unaligned_suffix};

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
    /// Written for `dual_key_gumbel` only, so that `gumbel` lines keep their fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithm: Option<&'static str>,
}

/// The algorithm as reports name it: `None` for `gumbel` (the default, left out of JSON).
fn algorithm_field(profile: &VllmProfile) -> Option<&'static str> {
    match profile.algorithm {
        VllmAlgorithm::Gumbel => None,
        other => Some(other.name()),
    }
}

/// The algorithm and its null, for the text reports.
fn describe(profile: &VllmProfile) -> String {
    match profile.algorithm {
        VllmAlgorithm::Gumbel => format!("context width {}", profile.context_width),
        VllmAlgorithm::DualKeyGumbel => format!(
            "dual_key_gumbel alpha {}, context width {}",
            profile.alpha.unwrap_or(DEFAULT_ALPHA),
            profile.context_width
        ),
    }
}

/// The null a score is judged against, for the text reports.
fn null_name(profile: &VllmProfile, scored: u64) -> String {
    match profile.algorithm {
        VllmAlgorithm::Gumbel => format!("Gamma({scored}, 1)"),
        VllmAlgorithm::DualKeyGumbel => {
            let alpha = profile.alpha.unwrap_or(DEFAULT_ALPHA);
            format!(
                "{}·Gamma({scored}, 1) + {alpha}·Gamma({scored}, 1), exact",
                1.0 - alpha
            )
        }
    }
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
                algorithm: algorithm_field(&setup.profile),
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
            "{} {}, {flagged} watermarked at FPR {} (vLLM key {fingerprint}, spec {VLLM_SCHEME}, {})",
            rows.len(),
            if rows.len() == 1 { "document" } else { "documents" },
            format_fpr(setup.fpr.get()),
            describe(&setup.profile),
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

/// `tracemark audit` with a vLLM-scheme profile: closed model (`--suspect`) or reading mode
/// (`--suspect-model` or `--suspect-url`, with `--texts`).
pub fn audit(args: &AuditArgs, out: &mut impl Write) -> Result<ExitStatus> {
    if args.filter.is_some()
        || args.curve.is_some()
        || args.plan
        || args.report.dir.is_some()
        || args.accounts.is_some()
    {
        bail!(
            "--filter, --curve, --plan, --report and --accounts are not available for {VLLM_SCHEME} profiles"
        );
    }
    match &args.suspect {
        Some(suspect) => {
            let setup = Setup::new(&args.profile, args.tokenizer.as_deref(), args.fpr, false)?;
            closed_audit(args, setup, suspect, out)
        }
        None if args.live.prompts.is_some() => live_closed_audit(args, out),
        None => reading_audit(args, out),
    }
}

/// The scanner of a closed audit: a context scored once across the whole audit, and a token
/// whose context occurs in its prompt (what the suspect read) not scored (vLLM's `all` scope,
/// whatever scope the profile's generator used).
fn closed_scanner(profile: &VllmProfile) -> Result<GumbelScanner> {
    let mut profile = profile.clone();
    profile.deduplicate_contexts = ContextScope::All;
    Ok(profile.scanner()?)
}

/// `--suspect-url URL --prompts PROMPTS.jsonl --cache CACHE.jsonl`: the suspect's answers are
/// collected into the cache (resuming from it), then audited from it exactly as
/// `--suspect CACHE.jsonl` audits them, so the verdict can be recomputed offline.
fn live_closed_audit(args: &AuditArgs, out: &mut impl Write) -> Result<ExitStatus> {
    let setup = Setup::new(&args.profile, args.tokenizer.as_deref(), args.fpr, true)?;
    let mut running = closed_scanner(&setup.profile)?;
    let tokenizer = || {
        setup
            .tokenizer
            .as_ref()
            .context("a live audit needs the profile's tokenizer: pass --tokenizer FILE")
    };
    let collected = crate::endpoint::collect(&args.live, tokenizer, |prompt, response| {
        running.add_document(prompt, response);
        let score = running.finish();
        Ok((score.scored, score.log10_p_value))
    })?;
    let Some(cache) = collected else {
        bail!("a live closed-model audit needs --suspect-url, --prompts and --cache");
    };
    closed_audit(args, setup, &cache, out)
}

/// `--suspect OUTPUTS.jsonl`: one pooled test over every answer. The audit's rules hold here
/// too: a context is scored once across the whole audit, and a token whose context occurs in its
/// prompt (what the suspect read) is not scored (vLLM's `all` scope, whatever scope the
/// profile's generator used).
fn closed_audit(
    args: &AuditArgs,
    mut setup: Setup,
    suspect: &std::path::Path,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let mut scanner = closed_scanner(&setup.profile)?;
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
            algorithm: algorithm_field(&setup.profile),
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
    } else {
        writeln!(
            out,
            "closed-model audit, {VLLM_SCHEME} (vLLM key {}, {})",
            setup.profile.key_fingerprint,
            describe(&setup.profile)
        )?;
        writeln!(
            out,
            "{documents} documents, {tokens} tokens, {} scored ({} skipped: repeated, partial or prompt contexts)",
            score.scored, score.skipped
        )?;
        print_test(&setup, &score, out)?;
    }
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        watermarked,
        score.scored == 0,
    ))
}

/// The pooled test's lines of the text reports: the sum against its null, and the verdict.
fn print_test(setup: &Setup, score: &GumbelScore, out: &mut impl Write) -> Result<()> {
    writeln!(
        out,
        "score {:.3} against {}: log10 p = {}, p = {}",
        score.score,
        null_name(&setup.profile, score.scored),
        fixed(score.log10_p_value),
        format_p(score.p_value)
    )?;
    if let Some(p) = score.vllm_p_value {
        writeln!(
            out,
            "(vLLM's detector, a moment-matched Gamma, would say p = {})",
            format_p(p)
        )?;
    }
    writeln!(
        out,
        "verdict at FPR {}: {}",
        format_fpr(setup.fpr.get()),
        verdict(score, setup.fpr)
    )?;
    Ok(())
}

/// Reading mode: the suspect (a model file, or a live endpoint) reads our texts, and its top-1
/// at each position is scored under our text's context (`watermark_core::vllm::ReadingAudit`).
fn reading_audit(args: &AuditArgs, out: &mut impl Write) -> Result<ExitStatus> {
    let Some(texts) = args.texts.as_ref() else {
        bail!(
            "give --suspect OUTPUTS.jsonl, --suspect-url URL with --prompts PROMPTS.jsonl, or \
             --texts OURS.jsonl with --suspect-model or --suspect-url"
        );
    };
    let setup = Setup::new(&args.profile, args.tokenizer.as_deref(), args.fpr, true)?;
    let Some(ours) = setup.tokenizer.as_ref() else {
        bail!("reading mode needs the profile's tokenizer: pass --tokenizer FILE");
    };
    let mut audit = setup
        .profile
        .reading_audit()?
        .with_max_contexts(crate::input::max_audit_tuples()?);
    let started = std::time::Instant::now();
    if let (Some(url), Some(cache)) = (&args.live.suspect_url, &args.live.cache) {
        for read in crate::endpoint::read_texts(&args.live, url, texts, cache, ours)? {
            audit
                .add_reading(&read.prompt, &read.text, &read.predictions)
                .with_context(|| read.source.clone())?;
        }
    } else if let Some(model) = &args.suspect_model {
        let check = |found: &str| setup.profile.check_tokenizer(found);
        let suspect = Suspect::load_checked(model, check, args.threads)?;
        let mut encoder = Encoder::Loaded(ours);
        each_answer(texts, "reading", |_, answer| {
            let (prompt, text, predictions) = suspect.read(answer, &mut encoder)?.into_aligned();
            Ok(audit.add_reading(&prompt, &text, &predictions)?)
        })?;
    } else {
        bail!("give --suspect OUTPUTS.jsonl, or --texts OURS.jsonl with --suspect-model or --suspect-url");
    }
    let report = audit.report();
    if report.documents == 0 {
        bail!("no documents to audit (every line is empty)");
    }
    print_reading(args, &setup, &report, started.elapsed().as_secs_f64(), out)?;
    let score = &report.score;
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        score.is_significant(setup.fpr.get()),
        score.scored == 0,
    ))
}

/// The reading-mode report, as text or as one JSON object.
fn print_reading(
    args: &AuditArgs,
    setup: &Setup,
    report: &ReadingReport,
    seconds: f64,
    out: &mut impl Write,
) -> Result<()> {
    let score = &report.score;
    let watermarked = score.is_significant(setup.fpr.get());
    if args.json {
        let mut line = serde_json::json!({
            "scheme": VLLM_SCHEME,
            "algorithm": setup.profile.algorithm.name(),
            "mode": "reading",
            "documents": report.documents,
            "tokens": report.tokens,
            "scored": score.scored,
            "skipped": report.skipped,
            "score": score.score,
            "log10_p_value": score.log10_p_value,
            "p_value": score.p_value,
            "fpr": setup.fpr.get(),
            "watermarked": watermarked,
            "key_fingerprint": setup.profile.key_fingerprint,
            "seconds": seconds,
        });
        if let Some(p) = score.vllm_p_value {
            line["vllm_p_value"] = p.into();
        }
        writeln!(out, "{line}")?;
        return Ok(());
    }
    writeln!(
        out,
        "reading-mode audit, {VLLM_SCHEME} (vLLM key {}, {})",
        setup.profile.key_fingerprint,
        describe(&setup.profile)
    )?;
    let k = &report.skipped;
    writeln!(
        out,
        "{} documents, {} tokens, {} scored; skipped: {} too little context, {} repeated, {} in prompt, {} earlier in text{}",
        report.documents,
        report.tokens,
        score.scored,
        k.too_little_context,
        k.repeated,
        k.in_prompt,
        k.earlier_in_text,
        unaligned_suffix(k.unaligned)
    )?;
    print_test(setup, score, out)
}
