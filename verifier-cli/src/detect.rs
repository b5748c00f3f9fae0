//! `tracemark detect`: read documents, score each with watermark-core, print a table or JSONL.
//!
//! Exit status: 0 when every document was scored (whatever the verdict), 1 on any error (bad
//! input, profile, key or tokenizer), 2 on a usage error (clap), and 3 with
//! `--fail-if-watermarked` when some document is judged watermarked.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;
use watermark_core::Profile;
use watermark_core::TextTokenizer;
use watermark_core::{detect, DetectOptions, Detection, TokenStatus};
use watermark_core::{Error, Fpr, SPEC_VERSION};

use crate::cli::{DetectArgs, EXIT_WATERMARKED};

/// Token ids, or text still to be tokenized.
#[derive(Debug)]
enum Content {
    Text(String),
    Tokens(Vec<u32>),
}

/// One document to score.
#[derive(Debug)]
struct Document {
    /// The file, `file:line` for JSONL, `<stdin>` for standard input.
    source: String,
    /// The JSONL `id`, echoed back.
    id: Option<Value>,
    prompt: Option<Content>,
    body: Content,
}

impl Document {
    fn needs_tokenizer(&self) -> bool {
        matches!(self.body, Content::Text(_)) || matches!(self.prompt, Some(Content::Text(_)))
    }
}

/// A JSONL line. Unknown fields are allowed (generate writes `watermarked`, pipelines add more).
#[derive(Debug, Deserialize)]
struct JsonDocument {
    text: Option<String>,
    tokens: Option<Vec<u32>>,
    prompt: Option<String>,
    prompt_tokens: Option<Vec<u32>>,
    id: Option<Value>,
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

pub fn run(args: &DetectArgs, out: &mut impl Write) -> Result<u8> {
    let profile = Profile::load(&args.profile)?;
    let green = profile.green_list()?;
    let fpr = args.fpr.unwrap_or(profile.fpr.get());
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
        Some(load_tokenizer(&profile, args.tokenizer.as_deref())?)
    } else {
        None
    };

    let mut scored = Vec::with_capacity(documents.len());
    for doc in documents {
        let source = doc.source;
        let encode = |content: Content| -> Result<Vec<u32>> {
            match content {
                Content::Tokens(ids) => Ok(ids),
                Content::Text(text) => {
                    // Checked above: text documents always have a tokenizer.
                    let tok = tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
                    Ok(tok.encode(&text)?)
                }
            }
        };
        let text_body = matches!(doc.body, Content::Text(_));
        let prompt = match doc.prompt {
            Some(Content::Text(p)) if p.trim().is_empty() => Vec::new(),
            Some(p) => encode(p).with_context(|| format!("{source}: prompt"))?,
            None => Vec::new(),
        };
        let ids = encode(doc.body).with_context(|| source.clone())?;
        let detection = detect(&green, &prompt, &ids, &options).with_context(|| source.clone())?;
        let pieces = if args.tokens && !args.json {
            Some(match (&tokenizer, text_body) {
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
        scored.push(Scored {
            source,
            id: doc.id,
            detection,
            pieces,
        });
    }

    if args.json {
        for s in &scored {
            let mut value = serde_json::to_value(&s.detection)?;
            if let Value::Object(map) = &mut value {
                map.insert("source".into(), Value::String(s.source.clone()));
                if let Some(id) = &s.id {
                    map.insert("id".into(), id.clone());
                }
            }
            let line = serde_json::to_string(&value)?;
            writeln!(out, "{line}")?;
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
    Ok(if args.fail_if_watermarked && any_flagged {
        EXIT_WATERMARKED
    } else {
        0
    })
}

/// Every document of every input, in order.
fn read_documents(args: &DetectArgs) -> Result<Vec<Document>> {
    let stdin_only = [PathBuf::from("-")];
    let inputs: &[PathBuf] = if args.inputs.is_empty() {
        &stdin_only
    } else {
        &args.inputs
    };
    let mut documents = Vec::new();
    for input in inputs {
        let is_stdin = input.as_os_str() == "-";
        let (name, bytes) = if is_stdin {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("<stdin>: cannot read")?;
            ("<stdin>".to_string(), bytes)
        } else {
            let name = input.display().to_string();
            let bytes = std::fs::read(input).map_err(|e| anyhow!("{name}: {e}"))?;
            (name, bytes)
        };
        let jsonl = args.jsonl || (!is_stdin && input.to_string_lossy().ends_with(".jsonl"));
        if jsonl {
            let before = documents.len();
            parse_jsonl(&name, &bytes, &mut documents)?;
            if documents.len() == before {
                bail!("{name}: no documents (every line is empty)");
            }
        } else {
            let text =
                String::from_utf8(bytes).map_err(|_| anyhow!("{name}: not valid UTF-8 text"))?;
            documents.push(Document {
                source: name,
                id: None,
                prompt: None,
                body: Content::Text(text),
            });
        }
    }
    Ok(documents)
}

/// One document per non-empty line; errors name `file:line`.
fn parse_jsonl(name: &str, bytes: &[u8], documents: &mut Vec<Document>) -> Result<()> {
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let source = format!("{name}:{}", index + 1);
        let line =
            std::str::from_utf8(line).map_err(|_| anyhow!("{source}: not valid UTF-8 text"))?;
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| anyhow!("{source}: malformed JSONL line: {e}"))?;
        if !value.is_object() {
            bail!("{source}: malformed JSONL line: expected a JSON object");
        }
        let doc: JsonDocument = serde_json::from_value(value)
            .map_err(|e| anyhow!("{source}: malformed JSONL line: {e}"))?;
        // Token ids are exact, text must be re-tokenized: when a line has both (as
        // `tracemark generate --json` writes), the ids are scored.
        let body = match (doc.tokens, doc.text) {
            (Some(tokens), _) => Content::Tokens(tokens),
            (None, Some(text)) => Content::Text(text),
            (None, None) => bail!("{source}: needs a `text` string or a `tokens` array"),
        };
        let prompt = match (doc.prompt_tokens, doc.prompt) {
            (Some(tokens), _) => Some(Content::Tokens(tokens)),
            (None, Some(text)) => Some(Content::Text(text)),
            (None, None) => None,
        };
        documents.push(Document {
            source,
            id: doc.id,
            prompt,
            body,
        });
    }
    Ok(())
}

/// The tokenizer for text documents: `--tokenizer`, else the profile's, checked against it.
pub(crate) fn load_tokenizer(profile: &Profile, given: Option<&Path>) -> Result<TextTokenizer> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let binding = profile.tokenizer.as_ref().ok_or(Error::NoTokenizer)?;
            let path = binding.path.as_ref().ok_or_else(|| {
                anyhow!("the profile records no tokenizer path; pass --tokenizer FILE")
            })?;
            profile.resolve(path)
        }
    };
    let tokenizer = TextTokenizer::from_file(&path)?;
    profile
        .check_tokenizer(tokenizer.fingerprint())
        .with_context(|| path.display().to_string())?;
    Ok(tokenizer)
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
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut text = String::new();
        for (column, (cell, &width)) in cells.zip(&widths).enumerate() {
            if column > 0 {
                text.push_str("  ");
            }
            if left(column) {
                text.push_str(&format!("{cell:<width$}"));
            } else {
                text.push_str(&format!("{cell:>width$}"));
            }
        }
        text.trim_end().to_string()
    };
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
    let verdict = if d.header.watermarked {
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

/// Two decimals, without a "-0.00".
pub(crate) fn fixed(x: f64) -> String {
    let s = format!("{x:.2}");
    if s == "-0.00" {
        "0.00".to_string()
    } else {
        s
    }
}

/// `3.1e-12`, or `<1e-308` when the p-value underflows (its log10 is still exact).
pub(crate) fn format_p(p: f64) -> String {
    if p == 0.0 {
        "<1e-308".to_string()
    } else {
        format!("{p:.1e}")
    }
}

/// `0.01` for ordinary rates, `1e-6` for small ones.
pub(crate) fn format_fpr(fpr: f64) -> String {
    if fpr >= 1e-3 {
        format!("{fpr}")
    } else {
        format!("{fpr:e}")
    }
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
    fn numbers_are_formatted_for_the_table() {
        assert_eq!(format_p(3.14e-12), "3.1e-12");
        assert_eq!(format_p(0.0), "<1e-308");
        assert_eq!(fixed(-0.001), "0.00");
        assert_eq!(fixed(-41.987), "-41.99");
        assert_eq!(format_fpr(1e-6), "1e-6");
        assert_eq!(format_fpr(0.01), "0.01");
    }

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

    #[test]
    fn jsonl_lines_become_documents_or_name_their_line() {
        let mut docs = Vec::new();
        let input = b"\xef\xbb\xbf{\"text\": \"hi\", \"id\": [1]}\r\n\n  \n{\"tokens\": [1, 2], \"prompt_tokens\": [0], \"extra\": true}\n";
        parse_jsonl("f.jsonl", input, &mut docs).expect("valid JSONL");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source, "f.jsonl:1");
        assert!(docs[0].needs_tokenizer());
        assert_eq!(docs[0].id, Some(serde_json::json!([1])));
        assert_eq!(docs[1].source, "f.jsonl:4");
        assert!(!docs[1].needs_tokenizer());
        for (bad, needle) in [
            (&b"[1, 2]"[..], "expected a JSON object"),
            (b"{\"tokens\": [-1]}", "f.jsonl:1"),
            (b"{\"prompt\": \"a\"}", "needs a `text`"),
            (b"\n\xff", "f.jsonl:2: not valid UTF-8"),
        ] {
            let err = parse_jsonl("f.jsonl", bad, &mut Vec::new()).expect_err("invalid JSONL");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }
}
