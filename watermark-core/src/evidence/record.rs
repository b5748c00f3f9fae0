//! `evidence.json`: everything a report shows, with the SHA-256 of every input and the
//! arguments that recompute it. The HTML report is rendered from this record alone, so a
//! verifier that recomputes the record and re-renders the page checks both.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::commitment::{Commitment, PublicParameters};
use super::EvidenceError;
use crate::scan::{ReportHeader, Skipped};
use crate::score::Score;

/// Names the file format.
pub const EVIDENCE_FORMAT: &str = "tracemark-evidence-v1";

/// Largest evidence record read (per-token detail of long documents adds up).
const MAX_EVIDENCE_BYTES: u64 = 512 << 20;

/// The evidence record of one `detect` or `audit` run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// [`EVIDENCE_FORMAT`].
    pub format: String,
    /// The tracemark version that wrote it.
    pub tracemark_version: String,
    /// The green-list spec.
    pub spec: String,
    /// When it was written, UTC.
    pub created: String,
    /// The command line as typed.
    pub command_line: Vec<String>,
    /// The directory it ran in; relative input paths are relative to it.
    pub working_directory: String,
    /// The profile's public parameters.
    pub profile: PublicParameters,
    /// The key commitment given with `--commitment`, checked against the key when written.
    pub commitment: Option<Commitment>,
    /// Every file read, with its SHA-256.
    pub inputs: Vec<InputFile>,
    /// The arguments that recompute the findings (`tracemark` and `--profile`, `--report`
    /// left out): what `tracemark verify-report` runs.
    pub rerun: Vec<String>,
    /// The verdicts and every statistic.
    pub findings: Findings,
}

/// One input file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputFile {
    /// What it is: "document", "tokenizer", "suspect outputs", "filter", "texts", "suspect model".
    pub role: String,
    /// The path as given on the command line.
    pub path: String,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What was found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Findings {
    /// `tracemark detect`: one finding per document.
    Detect {
        /// The documents, in input order.
        documents: Vec<DocumentFinding>,
    },
    /// `tracemark audit`: one pooled test.
    Audit(Box<AuditFinding>),
}

/// The test statistics of a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statistics {
    /// Tokens examined (prompts excluded).
    pub tokens: u64,
    /// Distinct (window, token) tuples scored.
    pub scored: u64,
    /// Green among them.
    pub green: u64,
    /// The green probability under the null hypothesis.
    pub gamma: f64,
    /// green / scored; absent when nothing was scored.
    pub green_fraction: Option<f64>,
    /// The z-score; absent when nothing was scored.
    pub z_score: Option<f64>,
    /// log10 of the exact p-value.
    pub log10_p_value: f64,
    /// The false-positive rate of the verdict.
    pub fpr: f64,
    /// Whether p ≤ fpr.
    pub watermarked: bool,
}

impl Statistics {
    /// The statistics of a detection's or an audit's header.
    pub fn of(header: &ReportHeader) -> Self {
        Self::of_score(
            &header.score,
            header.tokens,
            header.fpr.get(),
            header.watermarked,
        )
    }

    /// The statistics of a score.
    pub fn of_score(score: &Score, tokens: u64, fpr: f64, watermarked: bool) -> Self {
        let finite = |x: f64| (score.scored > 0 && x.is_finite()).then_some(x);
        Statistics {
            tokens,
            scored: score.scored,
            green: score.green,
            gamma: score.gamma,
            green_fraction: finite(score.green_fraction),
            z_score: finite(score.z_score),
            log10_p_value: score.log10_p_value,
            fpr,
            watermarked,
        }
    }
}

/// Skipped tokens by rule, under the names `--json` uses.
pub fn skipped_by_rule(skipped: &Skipped) -> BTreeMap<String, u64> {
    [
        ("too_little_context", skipped.too_little_context),
        ("repeated", skipped.repeated),
        ("in_prompt", skipped.in_prompt),
        ("earlier_in_text", skipped.earlier_in_text),
        ("not_in_filter", skipped.not_in_filter),
        ("unaligned", skipped.unaligned),
    ]
    .into_iter()
    // `unaligned` only arises when the suspect has another tokenizer: left out otherwise.
    .filter(|&(k, v)| k != "unaligned" || v > 0)
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One document of a detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentFinding {
    /// `file` or `file:line`.
    pub source: String,
    /// The document's `id`, if its line had one.
    pub id: Option<Value>,
    /// "watermarked", "watermarked (window)", "not watermarked" or "nothing to score".
    pub verdict: String,
    /// The whole-document test.
    pub statistics: Statistics,
    /// Tokens not scored, by rule.
    pub skipped: BTreeMap<String, u64>,
    /// The windowed search's best passage, when asked for.
    pub window: Option<WindowFinding>,
    /// Every token, with its text and status.
    pub tokens: Vec<TokenFinding>,
}

/// The best passage of a windowed search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowFinding {
    /// First token of the passage (index into the document's tokens).
    pub start: usize,
    /// One past its last token.
    pub end: usize,
    /// Scored tuples in it.
    pub scored: u64,
    /// Green among them.
    pub green: u64,
    /// log10 of its p-value times the windows tried (Bonferroni).
    pub corrected_log10_p_value: f64,
    /// Windows tried.
    pub windows_tried: u64,
    /// Whether the corrected p-value is at most the FPR.
    pub watermarked: bool,
}

/// One token of a document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFinding {
    /// Its text (or its id, for token input).
    pub text: String,
    /// "green", "red", or the reason it was not scored ("repeated", "too_little_context", ...).
    pub status: String,
}

/// The pooled test of an audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFinding {
    /// "closed" (the suspect's outputs) or "reading" (its predictions over our texts).
    pub mode: String,
    /// Whether only windows of our own outputs were scored.
    pub supervised: bool,
    /// Documents audited.
    pub documents: u64,
    /// "watermarked", "not detected" or "nothing to score".
    pub verdict: String,
    /// The pooled test.
    pub statistics: Statistics,
    /// Tokens not scored, by rule.
    pub skipped: BTreeMap<String, u64>,
    /// The audit's conclusion with its size.
    pub conclusion: String,
    /// The power planner's one-line plan, if there is one.
    pub plan: Option<String>,
    /// Cumulative (scored tokens, log10 p) after each document, thinned to at most
    /// [`MAX_CURVE_POINTS`] points (the last always kept).
    pub curve: Vec<[f64; 2]>,
    /// With `--accounts`: which accounts' answers the suspect learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsFinding>,
}

/// The per-account pooled tests of an audit (`audit --accounts`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsFinding {
    /// Accounts tested (the correction's M).
    pub accounts_tested: u64,
    /// The family-wise false-positive rate at which an account is attributed.
    pub fpr: f64,
    /// The accounts attributed, most likely first (empty: "no account").
    pub attributed: Vec<String>,
    /// Every account's test, most likely first.
    pub accounts: Vec<AccountFinding>,
}

/// One account's pooled test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFinding {
    /// The account id.
    pub account: String,
    /// log10 of its own exact p-value.
    pub log10_p_value: f64,
    /// log10 of the family-wise adjusted p-value.
    pub corrected_log10_p_value: f64,
    /// Whether the adjusted p-value is at most the false-positive rate.
    pub attributed: bool,
}

impl AccountsFinding {
    /// The record of an account audit's attribution.
    pub fn of(attribution: &crate::account::AccountAttribution) -> Self {
        AccountsFinding {
            accounts_tested: attribution.accounts_tested,
            fpr: attribution.fpr.get(),
            attributed: attribution
                .accounts
                .iter()
                .filter(|a| a.attributed)
                .map(|a| a.account.clone())
                .collect(),
            accounts: attribution
                .accounts
                .iter()
                .map(|a| AccountFinding {
                    account: a.account.clone(),
                    log10_p_value: a.log10_p_value,
                    corrected_log10_p_value: a.corrected_log10_p_value,
                    attributed: a.attributed,
                })
                .collect(),
        }
    }
}

/// Most curve points kept in a record: enough for a smooth plot.
pub const MAX_CURVE_POINTS: usize = 2000;

/// At most [`MAX_CURVE_POINTS`] of `points`, evenly spaced, the last always kept.
pub fn thin_curve(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    if points.len() <= MAX_CURVE_POINTS {
        return points.to_vec();
    }
    let step = points.len().div_ceil(MAX_CURVE_POINTS);
    let mut kept: Vec<[f64; 2]> = points.iter().step_by(step).copied().collect();
    if let Some(&last) = points.last() {
        if kept.last() != Some(&last) {
            kept.push(last);
        }
    }
    kept
}

impl Evidence {
    /// Parses an evidence record (`path` names it in errors).
    pub fn parse(raw: &[u8], path: &Path) -> Result<Self, EvidenceError> {
        let malformed = |reason: String| EvidenceError::Malformed {
            path: path.to_path_buf(),
            what: "evidence record",
            reason,
        };
        let evidence: Evidence =
            serde_json::from_slice(raw).map_err(|e| malformed(e.to_string()))?;
        if evidence.format != EVIDENCE_FORMAT {
            return Err(malformed(format!(
                "format is {:?}, expected {EVIDENCE_FORMAT:?}",
                evidence.format
            )));
        }
        Ok(evidence)
    }

    /// Reads and parses the record at `path`.
    pub fn read(path: &Path) -> Result<Self, EvidenceError> {
        let raw = crate::files::read_limited(path, MAX_EVIDENCE_BYTES, "evidence record").map_err(
            |e| EvidenceError::Malformed {
                path: path.to_path_buf(),
                what: "evidence record",
                reason: e.to_string(),
            },
        )?;
        Self::parse(&raw, path)
    }

    /// The record's text: pretty JSON and a final newline.
    pub fn to_json(&self) -> serde_json::Result<String> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        Ok(text)
    }
}

/// SHA-256 (hex) and size of the regular file at `path`, streamed.
pub fn file_sha256(path: &Path) -> crate::Result<(String, u64)> {
    let meta = std::fs::metadata(path).map_err(|e| crate::Error::io(path, e))?;
    if !meta.is_file() {
        return Err(crate::Error::Unreadable {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let mut file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buffer)
            .map_err(|e| crate::Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn thinning_keeps_the_ends_and_bounds_the_size() {
        let points: Vec<[f64; 2]> = (0..10_001).map(|i| [f64::from(i), -f64::from(i)]).collect();
        let thin = thin_curve(&points);
        assert!(thin.len() <= MAX_CURVE_POINTS + 1);
        assert_eq!(thin[0], points[0]);
        assert_eq!(thin.last(), points.last());
        assert_eq!(thin_curve(&points[..5]), points[..5].to_vec());
    }

    proptest::proptest! {
        /// Whatever bytes an evidence or commitment file holds, parsing returns, never panics.
        #[test]
        fn parsing_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Evidence::parse(&bytes, Path::new("e.json"));
            let _ = super::super::Commitment::parse(&bytes, Path::new("c.json"));
        }

        /// Nor does a valid-looking record with one byte changed.
        #[test]
        fn parsing_a_mutated_record_never_panics(at in 0usize..400, byte in proptest::num::u8::ANY) {
            let mut text = RECORD.as_bytes().to_vec();
            let at = at % text.len();
            text[at] = byte;
            let _ = Evidence::parse(&text, Path::new("e.json"));
        }
    }

    /// A small valid record.
    const RECORD: &str = r#"{"format":"tracemark-evidence-v1","tracemark_version":"0.1.0","spec":"s","created":"t","command_line":[],"working_directory":"/","profile":{"spec":"s","scheme":{"seeding":"previous","width":2,"gamma":0.25,"delta":2.0},"vocab_size":10,"tokenizer_fingerprint":null,"key_fingerprint":"k"},"commitment":null,"inputs":[],"rerun":["detect"],"findings":{"kind":"detect","documents":[]}}"#;

    #[test]
    fn the_sample_record_parses() {
        Evidence::parse(RECORD.as_bytes(), Path::new("e.json")).unwrap();
    }

    #[test]
    fn hashes_files_and_refuses_malformed_records() {
        let dir = std::env::temp_dir().join(format!("tm-evidence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.txt");
        std::fs::write(&file, b"abc").unwrap();
        let (sha, bytes) = file_sha256(&file).unwrap();
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(bytes, 3);
        assert!(file_sha256(&dir).is_err());
        let err = Evidence::parse(b"{\"format\": 1}", &file).unwrap_err();
        assert!(matches!(err, EvidenceError::Malformed { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
