//! `tracemark audit`: the distillation audit of a suspect model, from its outputs (closed model)
//! or from its predictions while reading our texts (open model). Inputs are streamed line by
//! line; memory grows with the distinct tuples scored, not with the input.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use watermark_core::Profile;
use watermark_core::TextTokenizer;
use watermark_core::{Audit, AuditOptions, AuditReport, CurvePoint, WindowFilter};
use watermark_core::{Error, Fpr, GreenList, SPEC_VERSION};

use crate::cli::{AuditArgs, EXIT_WATERMARKED};
use crate::detect::{fixed, format_fpr, format_p, load_tokenizer};

/// One JSONL line: a prompt and the answer to it, as text or token ids (ids win). The names of
/// `tracemark generate --json` (`completion`, `tokens`) are accepted too.
#[derive(Debug, Deserialize)]
struct Exchange {
    prompt: Option<String>,
    prompt_tokens: Option<Vec<u32>>,
    #[serde(alias = "completion", alias = "text")]
    response: Option<String>,
    #[serde(alias = "tokens", alias = "completion_tokens")]
    response_tokens: Option<Vec<u32>>,
}

/// How prompts given as text become token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PromptForm {
    /// As written (closed model: the windows inside the prompt are what matters).
    Plain,
    /// Wrapped in the default model's chat template, as the suspect read it.
    Chat,
}

/// Turns exchanges into token ids with a tokenizer loaded on first need.
struct Encoder<'a> {
    profile: &'a Profile,
    given: Option<&'a Path>,
    tokenizer: Option<TextTokenizer>,
}

impl Encoder<'_> {
    fn tokenizer(&mut self) -> Result<&TextTokenizer> {
        if self.tokenizer.is_none() {
            self.tokenizer = Some(load_tokenizer(self.profile, self.given)?);
        }
        self.tokenizer
            .as_ref()
            .ok_or_else(|| anyhow!(Error::NoTokenizer))
    }

    fn encode(&mut self, line: Exchange, form: PromptForm) -> Result<(Vec<u32>, Vec<u32>)> {
        let response = match (line.response_tokens, line.response) {
            (Some(ids), _) => ids,
            (None, Some(text)) if text.is_empty() => Vec::new(),
            (None, Some(text)) => self.tokenizer()?.encode(&text)?,
            (None, None) => bail!("needs a `response` string or a `response_tokens` array"),
        };
        let prompt = match (line.prompt_tokens, line.prompt) {
            (Some(ids), _) => ids,
            (None, Some(text)) if text.trim().is_empty() => Vec::new(),
            (None, Some(text)) => {
                let text = match form {
                    PromptForm::Plain => text,
                    PromptForm::Chat => tracemark_model::chat_prompt(None, &text),
                };
                self.tokenizer()?.encode(&text)?
            }
            (None, None) => Vec::new(),
        };
        Ok((prompt, response))
    }
}

pub fn run(args: &AuditArgs, out: &mut impl Write) -> Result<u8> {
    let profile = Profile::load(&args.profile)?;
    let green = profile.green_list()?;
    let options = AuditOptions {
        fpr: Fpr::new(args.fpr.unwrap_or(profile.fpr.get()))?,
        ..AuditOptions::default()
    };
    let mut encoder = Encoder {
        profile: &profile,
        given: args.tokenizer.as_deref(),
        tokenizer: None,
    };
    let mut audit = Audit::new(green.clone(), options)?;
    if let Some(filter_path) = &args.filter {
        let filter = read_filter(&green, filter_path, &mut encoder)?;
        audit = audit.with_filter(filter)?;
    }

    let started = Instant::now();
    let mode = if let Some(suspect) = &args.suspect {
        each_line(suspect, "auditing", |source, line| {
            let (prompt, response) = encoder.encode(line, PromptForm::Plain)?;
            audit
                .add_output(&prompt, &response)
                .with_context(|| source.to_string())
        })?;
        "closed"
    } else {
        let (Some(model_path), Some(texts)) = (&args.suspect_model, &args.texts) else {
            bail!("give --suspect OUTPUTS.jsonl, or --suspect-model MODEL.gguf with --texts OURS.jsonl");
        };
        let model = load_suspect(model_path, &profile, args.threads)?;
        each_line(texts, "reading", |source, line| {
            let (prompt, text) = encoder.encode(line, PromptForm::Chat)?;
            let predictions = tracemark_model::reading::top1_predictions(&model, &prompt, &text)
                .with_context(|| source.to_string())?;
            audit
                .add_reading(&prompt, &text, &predictions)
                .with_context(|| source.to_string())
        })?;
        "reading"
    };
    let report = audit.report();
    if report.documents == 0 {
        bail!("no documents to audit (every line is empty)");
    }

    if let Some(curve) = &args.curve {
        write_curve(curve, &audit.curve(), &report)?;
    }
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        if let Value::Object(map) = &mut value {
            map.insert("mode".into(), Value::String(mode.into()));
            map.insert("supervised".into(), Value::Bool(args.filter.is_some()));
            map.insert(
                "seconds".into(),
                serde_json::json!(started.elapsed().as_secs_f64()),
            );
        }
        writeln!(out, "{}", serde_json::to_string(&value)?)?;
    } else {
        print_report(&report, mode, args.filter.is_some(), out)?;
    }
    Ok(if args.fail_if_watermarked && report.header.watermarked {
        EXIT_WATERMARKED
    } else {
        0
    })
}

/// The windows of our own outputs, for a supervised audit.
fn read_filter(green: &GreenList, path: &Path, encoder: &mut Encoder) -> Result<WindowFilter> {
    let mut filter = WindowFilter::new(green);
    each_line(path, "filter", |source, line| {
        let (prompt, response) = encoder.encode(line, PromptForm::Plain)?;
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

/// The suspect model for reading mode; its vocabulary must be the profile's tokenizer's.
fn load_suspect(
    path: &Path,
    profile: &Profile,
    threads: Option<usize>,
) -> Result<tracemark_model::llama::Llama> {
    if let Some(n) = threads {
        tracemark_model::llama::set_threads(n)?;
    }
    let tokenizer = tracemark_model::GgufTokenizer::from_file(path)?.text_tokenizer()?;
    profile
        .check_tokenizer(tokenizer.fingerprint())
        .with_context(|| format!("{}: the suspect's tokenizer", path.display()))?;
    let options = tracemark_model::llama::LoadOptions::default();
    Ok(tracemark_model::llama::Llama::load(path, &options)?)
}

/// Calls `f` on each non-empty JSONL line of `path` (`-` is stdin), streaming; errors name
/// `file:line`. Shows progress on stderr when it is a terminal.
fn each_line(
    path: &Path,
    what: &str,
    mut f: impl FnMut(&str, Exchange) -> Result<()>,
) -> Result<()> {
    let name = path.display().to_string();
    let (reader, total): (Box<dyn Read>, Option<u64>) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), None)
    } else {
        let file = File::open(path).map_err(|e| anyhow!("{name}: {e}"))?;
        let total = file.metadata().ok().map(|m| m.len());
        (Box::new(file), total)
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut progress = Progress::new(what, total);
    let mut bytes = Vec::new();
    let mut number = 0usize;
    let mut any = false;
    loop {
        bytes.clear();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|e| anyhow!("{name}: {e}"))?;
        if n == 0 {
            break;
        }
        number += 1;
        progress.advance(n as u64);
        let source = format!("{name}:{number}");
        let text =
            std::str::from_utf8(&bytes).map_err(|_| anyhow!("{source}: not valid UTF-8 text"))?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let line: Exchange = serde_json::from_str(text)
            .map_err(|e| anyhow!("{source}: malformed JSONL line: {e}"))?;
        f(&source, line).with_context(|| source.clone())?;
        any = true;
    }
    progress.finish();
    if !any {
        bail!("{name}: no documents (every line is empty)");
    }
    Ok(())
}

/// A one-line progress display by bytes read, on a terminal only.
struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    enabled: bool,
    started: Instant,
    last_draw: Instant,
}

impl Progress {
    fn new(what: &str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Progress {
            what: what.to_string(),
            total,
            done: 0,
            enabled: std::io::stderr().is_terminal(),
            started: now,
            last_draw: now,
        }
    }

    fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if self.enabled && self.last_draw.elapsed().as_millis() >= 200 {
            self.last_draw = Instant::now();
            let mb = self.done as f64 / 1e6;
            let rate = mb / self.started.elapsed().as_secs_f64().max(1e-9);
            let line = match self.total {
                Some(total) if total > 0 => {
                    let width = 30;
                    let filled = (width as u64 * self.done.min(total) / total) as usize;
                    format!(
                        "[{}{}] {} {mb:.1}/{:.1} MB · {rate:.1} MB/s",
                        "#".repeat(filled),
                        ".".repeat(width - filled),
                        self.what,
                        total as f64 / 1e6
                    )
                }
                _ => format!("{} {mb:.1} MB · {rate:.1} MB/s", self.what),
            };
            let _ = write!(std::io::stderr(), "\r{line} ");
        }
    }

    fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r{}\r", " ".repeat(72));
        }
    }
}

/// The curve as `PATH.csv` and `PATH.png` (whatever extension PATH had).
fn write_curve(path: &Path, curve: &[CurvePoint], report: &AuditReport) -> Result<()> {
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
    std::fs::write(&csv_path, csv).map_err(|e| anyhow!("{}: {e}", csv_path.display()))?;
    let png_path = path.with_extension("png");
    draw_curve(&png_path, curve, report)?;
    Ok(())
}

fn draw_curve(path: &Path, curve: &[CurvePoint], report: &AuditReport) -> Result<()> {
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
        .save_png(path, 900, 560)
        .map_err(|e| anyhow!("{}: {e}", path.display()))
}

fn print_report(
    report: &AuditReport,
    mode: &str,
    supervised: bool,
    out: &mut impl Write,
) -> Result<()> {
    let s = &report.header.score;
    let verdict = if report.header.watermarked {
        "WATERMARKED: the suspect carries the watermark"
    } else {
        "not watermarked"
    };
    writeln!(
        out,
        "audit ({}, {}): {} documents, {} tokens",
        if mode == "reading" {
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
        "skipped: {} too little context, {} repeated, {} in prompt, {} earlier in text, {} not in filter",
        k.too_little_context, k.repeated, k.in_prompt, k.earlier_in_text, k.not_in_filter
    )?;
    writeln!(
        out,
        "{verdict} at FPR {} (key {}, spec {SPEC_VERSION})",
        format_fpr(report.header.fpr.get()),
        report.header.key_fingerprint
    )?;
    Ok(())
}
