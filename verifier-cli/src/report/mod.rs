//! `--report DIR` of `detect` and `audit`: `evidence.json` (every number, the SHA-256 of every
//! input, the arguments that recompute it) and `report.html` rendered from it, for a reader who
//! is not a statistician and a verifier who does not trust us.

mod audit;
mod detect;
pub mod html;
mod svg;
pub mod words;

pub(crate) use audit::audit_findings;
pub(crate) use detect::detect_findings;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use watermark_core::evidence::{
    file_sha256, utc_timestamp, Commitment, Evidence, Findings, InputFile, PublicParameters,
    EVIDENCE_FORMAT,
};
use watermark_core::{ProfileSession, SecretKey, SPEC_VERSION};

/// The report's file names inside DIR.
pub const EVIDENCE_FILE: &str = "evidence.json";
pub const HTML_FILE: &str = "report.html";

/// `--report DIR` and `--commitment FILE`, shared by `detect` and `audit`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Also write DIR/report.html (self-contained) and DIR/evidence.json: the verdict in
    /// words, every statistic, and the SHA-256 of every input, for `tracemark verify-report`.
    #[arg(long = "report", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// A key commitment (`tracemark commit`) to check against the key and include in the report.
    #[arg(long, value_name = "FILE", requires = "dir")]
    pub commitment: Option<PathBuf>,
}

/// What a command hands to the report: its findings, the files it read and the arguments that
/// recompute them.
#[derive(Debug)]
pub(crate) struct Run {
    pub findings: Findings,
    pub inputs: Vec<InputFile>,
    pub rerun: Vec<String>,
}

/// An input file's record: the path as given, its SHA-256 and size.
pub(crate) fn input_file(role: &str, path: &Path) -> Result<InputFile> {
    if path.as_os_str() == "-" {
        bail!("--report needs input files, not stdin: a verifier must be able to hash and re-read every input");
    }
    let (sha256, bytes) = file_sha256(path)?;
    Ok(InputFile {
        role: role.to_string(),
        path: path.display().to_string(),
        sha256,
        bytes,
    })
}

/// Every regular file of a directory input (a checkpoint), sorted, or the file itself.
pub(crate) fn input_files(role: &str, path: &Path) -> Result<Vec<InputFile>> {
    if !path.is_dir() {
        return Ok(vec![input_file(role, path)?]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| path.display().to_string())?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files.iter().map(|f| input_file(role, f)).collect()
}

/// The tokenizer file the session reads text with, when there is one.
pub(crate) fn tokenizer_input(session: &ProfileSession) -> Result<Option<InputFile>> {
    match session.tokenizer_path() {
        Ok(path) if path.is_file() => Ok(Some(input_file("tokenizer", &path)?)),
        _ => Ok(None),
    }
}

/// Builds the evidence record of `run` and writes it and its page into `dir`.
pub(crate) fn write(
    dir: &Path,
    commitment: Option<&Path>,
    session: &ProfileSession,
    run: Run,
) -> Result<()> {
    let profile = session.profile();
    let parameters = PublicParameters::of(profile);
    let commitment = match commitment {
        Some(path) => {
            let c = Commitment::read(path)?;
            let key = SecretKey::read(&profile.resolve(&profile.key_file))?;
            c.open(&parameters, &key)
                .with_context(|| format!("{}: the commitment", path.display()))?;
            Some(c)
        }
        None => None,
    };
    let evidence = Evidence {
        format: EVIDENCE_FORMAT.to_string(),
        tracemark_version: env!("CARGO_PKG_VERSION").to_string(),
        spec: SPEC_VERSION.to_string(),
        created: utc_timestamp(),
        command_line: std::env::args().collect(),
        working_directory: std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        profile: parameters,
        commitment,
        inputs: run.inputs,
        rerun: run.rerun,
        findings: run.findings,
    };
    let json = evidence.to_json()?;
    // The page is rendered from the record as read back, exactly as `verify-report` renders it.
    let html = html::render(&Evidence::parse(json.as_bytes(), Path::new(EVIDENCE_FILE))?)?;
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let (json_path, html_path) = (dir.join(EVIDENCE_FILE), dir.join(HTML_FILE));
    for path in [&json_path, &html_path] {
        if std::fs::symlink_metadata(path).is_ok() {
            bail!(
                "{}: exists; choose a new --report directory",
                path.display()
            );
        }
    }
    watermark_core::write_output(&json_path, json.as_bytes(), false)?;
    watermark_core::write_output(&html_path, html.as_bytes(), false)?;
    Ok(())
}
