//! `tracemark detect`: read documents, score each with watermark-core, print a table or JSONL.
//!
//! Exit status: 0 when every document was scored (whatever the verdict), 1 on any error (bad
//! input, profile, key or tokenizer), 2 on a usage error (clap), 3 with
//! `--fail-if-watermarked` when some document is judged watermarked, 4 when some document had
//! nothing to score.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use watermark_core::Profile;
use watermark_core::TextTokenizer;
use watermark_core::{detect, DetectOptions, Detection, TokenStatus};
use watermark_core::{Error, Fpr, GreenList, SPEC_VERSION};

use super::tokenizer;
use crate::exit::ExitStatus;
use crate::input::{BodyFields, Content, Document, Input, IoWording};
use crate::numbers::{fixed, format_fpr, format_p};

pub const LONG_ABOUT: &str = "Test documents for the watermark and report, for each, its \
green-token count, z-score, exact p-value and verdict at the false-positive rate.

Inputs: a file path, or `-` for stdin (no INPUT reads stdin). A file whose name ends in .jsonl \
holds one document per non-empty line: a JSON object with `text` (a string) or `tokens` (an \
array of token ids), optionally `prompt` (a string) or `prompt_tokens` (an array), and optionally \
`id` (any JSON value, echoed back); where a line has both ids and text (as `tracemark generate \
--json` writes), the ids are scored. Any other input is one UTF-8 plain-text document. Text needs \
a tokenizer: --tokenizer FILE, else the one the profile records; it must be the tokenizer the \
profile was made with.

A document is judged watermarked when its p-value is at most the false-positive rate or, with \
--windowed, when its best window's corrected p-value is.

Exit status:
  0  every document was scored (whatever the verdict)
  1  an error: bad input, profile, key or tokenizer
  2  command-line usage error
  3  with --fail-if-watermarked: some document was judged watermarked
  4  some document had no token that could be scored (too short for the window, or every
     token excluded): its verdict is \"nothing to score\", not \"not watermarked\"";

/// Arguments of `tracemark detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Profile written by `tracemark keygen` (profile.toml or profile.json).
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
    /// tokenizer.json for text input (default: the one the profile records).
    #[arg(long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Files to test: plain text, or .jsonl with one document per line; `-` or none reads stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Read every input as JSONL, stdin included (default: only files ending in .jsonl).
    #[arg(long)]
    pub jsonl: bool,
    /// Print one JSON object per document (JSONL) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// False-positive rate of the verdict, in (0, 1) (default: the profile's).
    #[arg(long, value_name = "A")]
    pub fpr: Option<f64>,
    /// Also search windows of each document for a watermarked passage (corrected p-value).
    #[arg(long)]
    pub windowed: bool,
    /// Show each token: green as [+piece], red as piece, not scored as (piece).
    #[arg(long)]
    pub tokens: bool,
    /// Exit with status 3 when any document is judged watermarked.
    #[arg(long)]
    pub fail_if_watermarked: bool,
    /// The evidence report (`--report DIR`, `--commitment FILE`).
    #[command(flatten)]
    pub report: crate::report::ReportArgs,
    /// Also name the API account each document came from: the accounts listed in FILE, one id
    /// per line, each tested with a p-value corrected for their number ("no account" when none
    /// is significant).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["windowed", "tokens"])]
    pub accounts: Option<PathBuf>,
}

/// A scored document.
#[derive(Debug)]
struct Scored {
    source: String,
    id: Option<Value>,
    detection: Detection,
    /// Each token as printed by `--tokens`: decoded text, or the id for token input.
    pieces: Option<Vec<String>>,
}

impl Scored {
    /// The verdict that counts for the summary and the exit status: the plain test, or with
    /// `--windowed` also the corrected windowed test.
    fn judged_watermarked(&self) -> bool {
        self.detection.header.watermarked
            || self
                .detection
                .windowed
                .as_ref()
                .is_some_and(|w| w.watermarked)
    }
}

/// One `--json` line: the detection, where the document came from, and its `id` if it has one.
#[derive(Debug, Serialize)]
struct DetectionLine<'a> {
    #[serde(flatten)]
    detection: &'a Detection,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
}

pub fn run(args: &DetectArgs, out: &mut impl Write) -> Result<ExitStatus> {
    if watermark_core::vllm::VllmProfile::is_vllm_profile(&args.profile)? {
        return super::vllm_scheme::detect(args, out);
    }
    if let Some(accounts) = &args.accounts {
        if args.report.dir.is_some() {
            bail!("--report with --accounts is not available yet (the evidence report has no per-account results)");
        }
        return super::accounts::detect_documents(args, accounts, out);
    }
    let session = Profile::open(&args.profile)?.with_tokenizer_file(args.tokenizer.as_deref());
    let green = session.green_list();
    let fpr = args.fpr.unwrap_or(session.fpr().get());
    if !(fpr > 0.0 && fpr < 1.0) {
        bail!("false-positive rate {} must lie in (0, 1)", fpr);
    }
    let options = DetectOptions {
        fpr: Fpr::new(fpr)?,
        windowed: args.windowed,
        per_token: args.tokens,
        deduplicate: true,
    };

    let documents = read_documents(args)?;
    let tokenizer = if documents.iter().any(Document::needs_tokenizer) {
        Some(tokenizer(&session)?)
    } else {
        None
    };

    if let Some(dir) = &args.report.dir {
        let run = crate::report::detect_findings(args, &session, options.fpr)?;
        crate::report::write(dir, args.report.commitment.as_deref(), &session, run)?;
    }

    let show_tokens = args.tokens && !args.json;
    let scored = documents
        .into_iter()
        .map(|doc| score(doc, green, tokenizer, &options, show_tokens))
        .collect::<Result<Vec<_>>>()?;

    if args.json {
        for s in &scored {
            let line = DetectionLine {
                detection: &s.detection,
                source: &s.source,
                id: s.id.as_ref(),
            };
            // Written through a `Value`, whose objects sort their keys: the lines keep the
            // key order they have always had.
            writeln!(out, "{}", serde_json::to_value(&line)?)?;
        }
    } else {
        print_table(&scored, args.windowed, out)?;
        let flagged = scored.iter().filter(|s| s.judged_watermarked()).count();
        writeln!(
            out,
            "{} {}, {flagged} watermarked at FPR {} (key {}, spec {SPEC_VERSION})",
            scored.len(),
            if scored.len() == 1 {
                "document"
            } else {
                "documents"
            },
            format_fpr(options.fpr.get()),
            green.key_fingerprint(),
        )?;
    }

    let any_flagged = scored.iter().any(Scored::judged_watermarked);
    let unscored = scored.iter().any(|s| s.detection.header.score.scored == 0);
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        any_flagged,
        unscored,
    ))
}

/// Every document of every input, in order. All are read before any is scored, so that a
/// malformed line is reported before a missing tokenizer or a token outside the vocabulary.
pub(crate) fn read_documents(args: &DetectArgs) -> Result<Vec<Document>> {
    let stdin_only = [PathBuf::from("-")];
    let inputs: &[PathBuf] = if args.inputs.is_empty() {
        &stdin_only
    } else {
        &args.inputs
    };
    let mut documents = Vec::new();
    for path in inputs {
        let is_stdin = path.as_os_str() == "-";
        let input = if is_stdin {
            Input::stdin("<stdin>", IoWording::CannotRead)
        } else {
            Input::file(path, IoWording::Plain)?
        };
        let jsonl = args.jsonl || (!is_stdin && path.to_string_lossy().ends_with(".jsonl"));
        if jsonl {
            let mut lines = input.lines()?;
            for line in lines.by_ref() {
                documents.push(line?.document(BodyFields::Document)?);
            }
            lines.finish()?;
        } else {
            let name = input.name().to_string();
            documents.push(Document::plain_text(name, input.read_text()?));
        }
    }
    Ok(documents)
}

/// A document's source, prompt ids and body ids, and whether its body was text. The tokenizer
/// is needed (and loaded by the caller) whenever some document is text.
pub(crate) fn encode_document(
    doc: Document,
    tokenizer: Option<&TextTokenizer>,
) -> Result<(String, Vec<u32>, Vec<u32>, bool)> {
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
    Ok((source, prompt, ids, text_body))
}

/// Scores one document; with `show_tokens`, also keeps each token's text for the table.
fn score(
    mut doc: Document,
    green: &GreenList,
    tokenizer: Option<&TextTokenizer>,
    options: &DetectOptions,
    show_tokens: bool,
) -> Result<Scored> {
    let id = doc.id.take();
    let (source, prompt, ids, text_body) = encode_document(doc, tokenizer)?;
    let detection = detect(green, &prompt, &ids, options).with_context(|| source.clone())?;
    let pieces = if show_tokens {
        Some(match (tokenizer, text_body) {
            (Some(tok), true) => ids
                .iter()
                .map(|&id| tok.decode(&[id]).map(|p| printable(&p)))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| source.clone())?,
            _ => ids.iter().map(u32::to_string).collect(),
        })
    } else {
        None
    };
    Ok(Scored {
        source,
        id,
        detection,
        pieces,
    })
}

/// The aligned table, with each document's tokens under its row when asked for.
fn print_table(scored: &[Scored], windowed: bool, out: &mut impl Write) -> Result<()> {
    let mut header = vec![
        "source", "tokens", "scored", "green", "z", "log10 p", "p", "verdict",
    ];
    if windowed {
        header.extend(["window log10 p", "window"]);
    }
    // Left-aligned: source, verdict, window span. Right-aligned: the numbers.
    let left = |column: usize| column == 0 || column == 7 || column == 9;
    let rows: Vec<Vec<String>> = scored.iter().map(|s| row(s, windowed)).collect();
    let widths = crate::numbers::column_widths(&header, &rows);
    let line =
        |cells: &mut dyn Iterator<Item = &str>| crate::numbers::table_line(cells, &widths, left);
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for (s, r) in scored.iter().zip(&rows) {
        writeln!(out, "{}", line(&mut r.iter().map(String::as_str)))?;
        if let (Some(pieces), Some(statuses)) = (&s.pieces, &s.detection.token_statuses) {
            writeln!(out, "  {}", highlight(pieces, statuses))?;
        }
    }
    Ok(())
}

fn row(s: &Scored, windowed: bool) -> Vec<String> {
    let d = &s.detection;
    let verdict = if d.header.score.scored == 0 {
        "nothing to score"
    } else if d.header.watermarked {
        "WATERMARKED"
    } else if s.judged_watermarked() {
        "WATERMARKED (window)"
    } else {
        "not watermarked"
    };
    let mut cells = vec![
        s.source.clone(),
        d.header.tokens.to_string(),
        d.header.score.scored.to_string(),
        format!("{:.3}", d.header.score.green_fraction),
        fixed(d.header.score.z_score),
        fixed(d.header.score.log10_p_value),
        format_p(d.header.score.p_value),
        verdict.to_string(),
    ];
    if windowed {
        match &d.windowed {
            Some(w) => {
                cells.push(fixed(w.corrected_log10_p_value));
                cells.push(format!("{}..{}", w.start, w.end));
            }
            None => cells.extend(["-".to_string(), "-".to_string()]),
        }
    }
    cells
}

/// Green `[+piece]`, red `piece`, not scored `(piece)`, separated by spaces.
fn highlight(pieces: &[String], statuses: &[TokenStatus]) -> String {
    pieces
        .iter()
        .zip(statuses)
        .map(|(piece, status)| match status {
            TokenStatus::Green => format!("[+{piece}]"),
            TokenStatus::Red => piece.clone(),
            _ => format!("({piece})"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A token's text on one line: control characters escaped.
fn printable(piece: &str) -> String {
    piece
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_highlighted_by_status() {
        let pieces: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let statuses = [
            TokenStatus::TooLittleContext,
            TokenStatus::Green,
            TokenStatus::Red,
            TokenStatus::Repeated,
        ];
        assert_eq!(highlight(&pieces, &statuses), "(a) [+b] c (d)");
        assert_eq!(printable("x\ny\t"), "x\\ny\\t");
    }
}
