//! `tracemark audit`: the distillation audit of a suspect model, from its outputs (closed model)
//! or from its predictions while reading our texts (open model). Inputs are streamed line by
//! line; memory grows with the distinct tuples scored, not with the input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use serde::Serialize;
use watermark_core::TextTokenizer;
use watermark_core::{Audit, AuditOptions, AuditReport, CurvePoint, WindowFilter};
use watermark_core::{Fpr, GreenList, SPEC_VERSION};
use watermark_core::{Plan, PlanOptions, PlanStatus, DEFAULT_PLAN_CONFIDENCE, DEFAULT_PLAN_POWER};
use watermark_core::{Profile, ProfileSession};

use super::reading;
use super::tokenizer;
use crate::exit::ExitStatus;
use crate::input::{max_audit_tuples, BodyFields, Content, Document, Input, IoWording};
use crate::numbers::{fixed, format_fpr, format_p, grouped, unaligned_suffix};

pub const LONG_ABOUT: &str = "Test whether a suspect model was trained on our watermarked \
outputs (distillation), with one pooled exact test over everything it wrote or predicted.

Closed model (--suspect OUTPUTS.jsonl): the suspect's answers, one JSON object per line with \
`prompt` (string) or `prompt_tokens` (ids), and `response` (string) or `response_tokens` (ids); \
`tracemark generate --json` lines (`completion`, `tokens`) are read too. With --filter OURS.jsonl \
(our own logged outputs, same format) the audit is supervised: only tokens whose window occurs in \
our outputs are scored.

Open model, reading mode (--suspect-model MODEL.gguf --texts OURS.jsonl): the suspect reads each \
of our texts (a text `prompt` is wrapped in the chat template) in one forward pass; its top-1 \
prediction at every position is scored under the window taken from our text. A suspect whose \
tokenizer is not the profile's reads the text of our first i tokens its own way before each \
position i; its prediction counts where its text is exactly one of our tokens (the others are \
counted as `unaligned`). That needs a forward pass per position whose prefix it splits \
differently, so it is slower.

Every (window, token) tuple is scored once across the whole audit, and a token is not scored \
when its window occurs in what the suspect read before it (the prompt; in reading mode also the \
earlier text): without these rules the p-value of an innocent model is not valid. Inputs are \
streamed; memory grows with the distinct tuples scored (16 bytes each).

A verdict other than WATERMARKED is only \"not detected at N scored tokens\": the report says \
so (`conclusion`, `inconclusive` in --json) with a power plan from the audit as a pilot. --plan \
prints the plan for any verdict (and adds it to --json): the scored tokens, and documents at the \
pilot's scored tokens per document, at which an audit whose tokens are green at the pilot's rate \
reaches p <= --plan-target (default: the verdict's FPR) with probability --plan-power (default \
0.5: its median p does), from exact binomial tails; an interval from a two-sided Clopper-Pearson \
interval on the green rate at --plan-confidence (default 0.95); and the log10 p an audit of that \
many fresh tokens will report, with a prediction interval at the same confidence. The plan \
assumes new scored tokens (tuples the audit has not yet seen) are as green as the pilot's.

Exit status:
  0  the audit ran (whatever the verdict)
  1  an error: bad input, profile, key, tokenizer or model
  2  command-line usage error
  3  with --fail-if-watermarked: the suspect was judged to carry the watermark
  4  no token could be scored: the verdict is \"nothing to score\", not \"not watermarked\"";

/// Arguments of `tracemark audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Profile written by `tracemark keygen`.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// Closed model: the suspect's outputs, JSONL (`-` reads stdin).
    #[arg(long, value_name = "FILE", required_unless_present_any = ["suspect_model", "suspect_url"],
          conflicts_with_all = ["suspect_model", "texts"])]
    pub suspect: Option<PathBuf>,
    /// Supervised audit: our own outputs (JSONL); only windows occurring in them are scored.
    #[arg(long, value_name = "FILE")]
    pub filter: Option<PathBuf>,
    /// Open model: the suspect's GGUF file or Hugging Face checkpoint directory (llama or
    /// Qwen2: config.json, *.safetensors, tokenizer.json), read in reading mode over --texts.
    #[arg(long, value_name = "PATH", requires = "texts")]
    pub suspect_model: Option<PathBuf>,
    /// Open model: our watermarked texts (JSONL) for the suspect to read (--suspect-model,
    /// or a live endpoint with --suspect-url).
    #[arg(long, value_name = "FILE")]
    pub texts: Option<PathBuf>,
    /// tokenizer.json for text input (default: the one the profile records).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// False-positive rate of the verdict, in (0, 1) (default: the profile's).
    #[arg(long, value_name = "A")]
    pub fpr: Option<f64>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Write cumulative log10 p against scored tokens to PATH.csv and draw it in PATH.png;
    /// an existing file there is refused unless --force.
    #[arg(long, value_name = "PATH")]
    pub curve: Option<PathBuf>,
    /// Replace existing --curve files (never through a symbolic link).
    #[arg(long, requires = "curve")]
    pub force: bool,
    /// CPU threads for the suspect model (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Exit with status 3 when the suspect is judged to carry the watermark.
    #[arg(long)]
    pub fail_if_watermarked: bool,
    /// Plan a larger audit from this one as a pilot, whatever the verdict: print it (and add
    /// `plan` to --json).
    #[arg(long)]
    pub plan: bool,
    /// The p-value the planned audit must reach, in (0, 1) (default: the verdict's FPR).
    #[arg(long, value_name = "P", requires = "plan")]
    pub plan_target: Option<f64>,
    /// Probability that the planned audit reaches the target, in (0, 1).
    #[arg(long, value_name = "Q", requires = "plan", default_value_t = DEFAULT_PLAN_POWER)]
    pub plan_power: f64,
    /// Confidence of the plan's intervals, in (0, 1).
    #[arg(long, value_name = "C", requires = "plan", default_value_t = DEFAULT_PLAN_CONFIDENCE)]
    pub plan_confidence: f64,
    /// The evidence report (`--report DIR`, `--commitment FILE`).
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    /// Live closed model (--suspect-url and its options).
    #[command(flatten)]
    pub live: Box<crate::endpoint::LiveArgs>,
    /// Also name the API accounts whose answers the suspect learned: the accounts listed in
    /// FILE (one id per line), each with a pooled test and a family-wise corrected threshold.
    #[arg(long, value_name = "FILE", conflicts_with = "filter")]
    pub accounts: Option<PathBuf>,
}

/// What the suspect gave us: its outputs, or its predictions while reading our texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Closed,
    Reading,
}

/// The `--json` report: the audit's, and how it was run.
#[derive(Debug, Serialize)]
struct AuditLine<'a> {
    #[serde(flatten)]
    report: &'a AuditReport,
    mode: Mode,
    supervised: bool,
    /// `--accounts`: the per-account pooled tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    accounts: Option<watermark_core::account::AccountAuditReport>,
    /// Wall-clock time of the scoring, model included, in seconds.
    seconds: f64,
}

/// How prompts given as text become token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PromptForm {
    /// As written (closed model: the windows inside the prompt are what matters).
    Plain,
    /// Wrapped in the default model's chat template, as the suspect read it.
    Chat,
}

/// Turns answers into token ids with a tokenizer loaded on first need (the profile's), or one
/// already loaded (a vLLM-scheme profile's).
pub(super) enum Encoder<'a> {
    Session(&'a ProfileSession),
    Loaded(&'a TextTokenizer),
}

impl Encoder<'_> {
    pub(super) fn tokenizer(&mut self) -> Result<&TextTokenizer> {
        match self {
            Encoder::Session(session) => tokenizer(session),
            Encoder::Loaded(tokenizer) => Ok(tokenizer),
        }
    }

    /// The prompt's ids and the answer's.
    pub(super) fn encode(
        &mut self,
        answer: Document,
        form: PromptForm,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let response = match answer.body {
            Content::Tokens(ids) => ids,
            Content::Text(text) if text.is_empty() => Vec::new(),
            Content::Text(text) => self.tokenizer()?.encode(&text)?,
        };
        let prompt = match answer.prompt {
            Some(Content::Tokens(ids)) => ids,
            Some(Content::Text(text)) if text.trim().is_empty() => Vec::new(),
            Some(Content::Text(text)) => {
                let text = match form {
                    PromptForm::Plain => text,
                    PromptForm::Chat => tracemark_model::chat_prompt(None, &text),
                };
                self.tokenizer()?.encode(&text)?
            }
            None => Vec::new(),
        };
        Ok((prompt, response))
    }
}

pub fn run(args: &AuditArgs, out: &mut impl Write) -> Result<ExitStatus> {
    if watermark_core::vllm::VllmProfile::is_vllm_profile(&args.profile)? {
        return super::vllm_scheme::audit(args, out);
    }
    let session = Profile::open(&args.profile)?.with_tokenizer_file(args.tokenizer.as_deref());
    let green = session.green_list();
    let options = AuditOptions {
        fpr: Fpr::new(args.fpr.unwrap_or(session.fpr().get()))?,
        max_tuples: max_audit_tuples()?,
        ..AuditOptions::default()
    };
    let mut encoder = Encoder::Session(&session);
    let mut audit = Audit::new(green.clone(), options.clone())?;
    let mut accounts = match &args.accounts {
        Some(path) => Some(super::accounts::AuditAccounts::open(path, green, &options)?),
        None => None,
    };
    if let Some(filter_path) = &args.filter {
        let filter = read_filter(green, filter_path, &mut encoder)?;
        audit = audit.with_filter(filter)?;
    }

    let mut running = Audit::new(green.clone(), options.clone())?;
    let live_cache = crate::endpoint::collect(
        &args.live,
        || tokenizer(&session),
        |prompt, response| {
            running.add_output(prompt, response)?;
            let score = running.score();
            Ok((score.scored, score.log10_p_value))
        },
    )?;
    let started = Instant::now();
    let mode = if let Some(suspect) = args.suspect.as_ref().or(live_cache.as_ref()) {
        each_answer(suspect, "auditing", |source, answer| {
            let (prompt, response) = encoder.encode(answer, PromptForm::Plain)?;
            if let Some(a) = accounts.as_mut() {
                a.add_output(&prompt, &response)
                    .with_context(|| source.to_string())?;
            }
            audit
                .add_output(&prompt, &response)
                .with_context(|| source.to_string())
        })?;
        Mode::Closed
    } else if let (Some(url), Some(texts), Some(cache)) =
        (&args.live.suspect_url, &args.texts, &args.live.cache)
    {
        if args.report.dir.is_some() || accounts.is_some() {
            bail!("--report and --accounts are not available for a live reading-mode audit yet");
        }
        let ours = encoder.tokenizer()?;
        for read in crate::endpoint::read_texts(&args.live, url, texts, cache, ours)? {
            audit
                .add_reading_aligned(&read.prompt, &read.text, &read.predictions)
                .with_context(|| read.source.clone())?;
        }
        Mode::Reading
    } else {
        let (Some(model_path), Some(texts)) = (&args.suspect_model, &args.texts) else {
            bail!(
                "give --suspect OUTPUTS.jsonl, --suspect-model MODEL.gguf with --texts OURS.jsonl, \
                 or --suspect-url URL with --prompts PROMPTS.jsonl or --texts OURS.jsonl"
            );
        };
        let suspect = reading::Suspect::load(model_path, &session, args.threads)?;
        each_answer(texts, "reading", |source, answer| {
            let read = suspect
                .read(answer, &mut encoder)
                .with_context(|| source.to_string())?;
            if let Some(a) = accounts.as_mut() {
                let reading::Reading::Full {
                    prompt,
                    text,
                    predictions,
                } = &read
                else {
                    bail!("--accounts: not available for a suspect whose tokenizer is not the profile's");
                };
                a.add_reading(prompt, text, predictions)
                    .with_context(|| source.to_string())?;
            }
            read.add_to(&mut audit).with_context(|| source.to_string())
        })?;
        Mode::Reading
    };
    let mut report = audit.report();
    if report.documents == 0 {
        bail!("no documents to audit (every line is empty)");
    }
    if args.plan {
        let target = Fpr::new(args.plan_target.unwrap_or(report.header.fpr.get()))
            .context("--plan-target")?;
        let plan_options = PlanOptions::new(target, args.plan_power, args.plan_confidence)?;
        report.plan = Some(audit.plan(plan_options)?);
    }

    if let Some(curve) = &args.curve {
        write_curve(curve, &audit.curve(), &report, args.force)?;
    }
    if let Some(dir) = &args.report.dir {
        let suspect = args.suspect.as_deref().or(live_cache.as_deref());
        let curve = audit.curve();
        let run = crate::report::audit_findings(
            args,
            &session,
            &report,
            &curve,
            suspect,
            mode == Mode::Reading,
            accounts.as_ref().map(|a| a.report()).as_ref(),
        )?;
        crate::report::write(dir, args.report.commitment.as_deref(), &session, run)?;
    }
    let supervised = args.filter.is_some();
    if args.json {
        let line = AuditLine {
            report: &report,
            mode,
            supervised,
            accounts: accounts.as_ref().map(|a| a.report()),
            seconds: started.elapsed().as_secs_f64(),
        };
        // Written through a `Value`, whose objects sort their keys: the report keeps the key
        // order it has always had.
        writeln!(out, "{}", serde_json::to_value(&line)?)?;
    } else {
        print_report(&report, mode, supervised, out)?;
        print_conclusion(&report, args.plan, out)?;
        if let Some(a) = &accounts {
            a.print(out)?;
        }
    }
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        report.header.watermarked,
        report.header.score.scored == 0,
    ))
}

/// The windows of our own outputs, for a supervised audit.
fn read_filter(green: &GreenList, path: &Path, encoder: &mut Encoder) -> Result<WindowFilter> {
    let mut filter = WindowFilter::new(green);
    each_answer(path, "filter", |source, answer| {
        let (prompt, response) = encoder.encode(answer, PromptForm::Plain)?;
        filter
            .add_text(&prompt, &response)
            .with_context(|| source.to_string())
    })?;
    if filter.is_empty() {
        bail!(
            "{}: the filter holds no window (are its responses empty?)",
            path.display()
        );
    }
    Ok(filter)
}

/// Calls `f` with each answer of the JSONL input at `path` (`-` is stdin) and its
/// `file:line`, streaming; every error names `file:line`. Shows progress as `what` on stderr
/// when it is a terminal.
pub(super) fn each_answer(
    path: &Path,
    what: &str,
    mut f: impl FnMut(&str, Document) -> Result<()>,
) -> Result<()> {
    let input = if path.as_os_str() == "-" {
        Input::stdin("-", IoWording::Plain)
    } else {
        Input::file(path, IoWording::Plain)?
    };
    let mut lines = input.lines()?.with_progress(what);
    for line in lines.by_ref() {
        let answer = line?.document(BodyFields::Answer)?;
        let at = answer.source.clone();
        f(&at, answer).with_context(|| at)?;
    }
    lines.finish()?;
    Ok(())
}

/// The curve as `PATH.csv` and `PATH.png` (whatever extension PATH had).
fn write_curve(path: &Path, curve: &[CurvePoint], report: &AuditReport, force: bool) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| anyhow!("{}: {e}", dir.display()))?;
    }
    let csv_path = path.with_extension("csv");
    let mut csv = String::from("documents,scored,green,log10_p_value\n");
    for p in curve {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            p.documents, p.scored, p.green, p.log10_p_value
        ));
    }
    let png_path = path.with_extension("png");
    let png = draw_curve(&png_path, curve, report)?;
    // Both are checked before either is written, so a refusal leaves nothing half done.
    for out in [&csv_path, &png_path] {
        if !force && std::fs::symlink_metadata(out).is_ok() {
            bail!("{}: exists; pass --force to replace it", out.display());
        }
    }
    watermark_core::write_output(&csv_path, csv.as_bytes(), force)?;
    watermark_core::write_output(&png_path, &png, force)?;
    Ok(())
}

fn draw_curve(path: &Path, curve: &[CurvePoint], report: &AuditReport) -> Result<Vec<u8>> {
    use tracemark_plot::{Chart, ReferenceLine, Series};
    let points = curve
        .iter()
        .map(|p| (p.scored as f64, p.log10_p_value))
        .collect();
    let chart = Chart::new(
        format!(
            "Distillation audit: pooled log10 p (key {})",
            report.header.key_fingerprint
        ),
        "scored tokens",
        "log10 p",
    )
    .with_series(Series::line("pooled test", points))
    .with_reference(ReferenceLine::horizontal(
        report.header.fpr.log10(),
        format!("FPR {}", format_fpr(report.header.fpr.get())),
    ));
    chart
        .render_png(900, 560)
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn print_report(
    report: &AuditReport,
    mode: Mode,
    supervised: bool,
    out: &mut impl Write,
) -> Result<()> {
    let s = &report.header.score;
    let verdict = if s.scored == 0 {
        "nothing to score: no token of the suspect could be scored"
    } else if report.header.watermarked {
        "WATERMARKED: the suspect carries the watermark"
    } else {
        "not watermarked"
    };
    writeln!(
        out,
        "audit ({}, {}): {} documents, {} tokens",
        if mode == Mode::Reading {
            "open model, reading mode"
        } else {
            "closed model"
        },
        if supervised {
            "supervised"
        } else {
            "unsupervised"
        },
        report.documents,
        report.header.tokens
    )?;
    writeln!(
        out,
        "scored {}  green {} ({:.4}, γ {})  z {}  log10 p {}  p {}",
        s.scored,
        s.green,
        s.green_fraction,
        s.gamma,
        fixed(s.z_score),
        fixed(s.log10_p_value),
        format_p(s.p_value)
    )?;
    let k = &report.skipped;
    writeln!(
        out,
        "skipped: {} too little context, {} repeated, {} in prompt, {} earlier in text, {} not in filter{}",
        k.too_little_context,
        k.repeated,
        k.in_prompt,
        k.earlier_in_text,
        k.not_in_filter,
        unaligned_suffix(k.unaligned)
    )?;
    writeln!(
        out,
        "{verdict} at FPR {} (key {}, spec {SPEC_VERSION})",
        format_fpr(report.header.fpr.get()),
        report.header.key_fingerprint
    )?;
    Ok(())
}

/// Under the verdict: an inconclusive audit says so, with its plan in one line, or in full
/// with `--plan`.
fn print_conclusion(report: &AuditReport, full_plan: bool, out: &mut impl Write) -> Result<()> {
    if report.inconclusive && report.header.score.scored > 0 {
        writeln!(
            out,
            "inconclusive: {}, which is not a clean result",
            report.conclusion
        )?;
    }
    match &report.plan {
        Some(plan) if full_plan => print_plan(plan, out),
        Some(plan) => Ok(writeln!(
            out,
            "plan: {} (--plan for details)",
            plan.summary
        )?),
        None => Ok(()),
    }
}

/// The plan, with its intervals, under the report (`--plan`).
fn print_plan(plan: &Plan, out: &mut impl Write) -> Result<()> {
    let percent = format!("{}%", plan.confidence * 100.0);
    writeln!(
        out,
        "plan (target p ≤ {}, probability {}, {percent} intervals): {}",
        format_fpr(plan.target.get()),
        plan.power,
        plan.summary
    )?;
    if plan.status != PlanStatus::Excess {
        return Ok(());
    }
    let [fewest, most] = plan.scored_tokens_interval;
    writeln!(
        out,
        "  scored tokens {} ({} to {}): {} more than this audit's",
        budget(plan.scored_tokens),
        budget(fewest),
        budget(most),
        budget(plan.more_scored_tokens)
    )?;
    if let Some(per_document) = plan.scored_tokens_per_document {
        let [fewest, most] = plan.documents_interval;
        writeln!(
            out,
            "  documents {} ({} to {}): {} more, at {per_document:.1} scored tokens per document",
            budget(plan.documents),
            budget(fewest),
            budget(most),
            budget(plan.more_documents)
        )?;
    }
    if let Some(p) = &plan.prediction {
        let [best, worst] = p.log10_p_interval;
        writeln!(
            out,
            "  an audit of {} fresh scored tokens: log10 p {} (median), {} to {} ({percent})",
            grouped(p.scored_tokens),
            fixed(p.log10_p_median),
            fixed(best),
            fixed(worst)
        )?;
    }
    Ok(())
}

/// A budget, or "unbounded" when there is none (none at all, or beyond the planner's cap).
fn budget(tokens: Option<u64>) -> String {
    tokens.map_or_else(|| "unbounded".to_string(), grouped)
}
