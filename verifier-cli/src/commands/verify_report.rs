//! `tracemark verify-report`: recomputes a `--report` directory from its inputs and the
//! revealed key, and confirms it or names the first difference.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser};
use serde_json::Value;
use watermark_core::evidence::{file_sha256, first_mismatch, Evidence, EvidenceError};

use super::verify_commitment::revealed;
use crate::cli::{Cli, Command};
use crate::exit::{self, ExitStatus};
use crate::report::{html, EVIDENCE_FILE, HTML_FILE};

pub const LONG_ABOUT: &str = "Check an evidence report written by `detect --report` or \
`audit --report`: report.html must be what evidence.json renders; the profile (with the revealed \
key) must have the recorded public parameters and open the recorded commitment; every input \
file, at its recorded path (relative paths from the current directory), must have its recorded \
SHA-256; and the findings recomputed from those inputs must equal the recorded ones, number for \
number. The first difference is named.

Exit status:
  0  the report is confirmed
  1  an error: an input or the profile cannot be read
  2  command-line usage error
  5  the key is not the one the report (or its commitment) was made with
  6  something differs: the page, a parameter, an input's SHA-256 or a recomputed number
  7  evidence.json is malformed";

/// Arguments of `tracemark verify-report`.
#[derive(Debug, Args)]
pub struct VerifyReportArgs {
    /// The report directory (holding evidence.json and report.html).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The profile with the revealed key.
    #[arg(long, value_name = "FILE")]
    pub profile: PathBuf,
}

/// Fields that legitimately differ between the report and its recomputation.
const NOT_RECOMPUTED: &[&str] = &["created", "command_line", "working_directory", "commitment"];

pub fn run(args: &VerifyReportArgs, out: &mut impl Write) -> Result<ExitStatus> {
    let evidence = match Evidence::read(&args.dir.join(EVIDENCE_FILE)) {
        Ok(e) => e,
        Err(e) => return Ok(exit::refused(&e)),
    };
    match check(args, &evidence)? {
        Ok(()) => {
            writeln!(
                out,
                "confirmed: {} recomputed from {} input file{} with key {}; every number matches",
                args.dir.display(),
                evidence.inputs.len(),
                if evidence.inputs.len() == 1 { "" } else { "s" },
                evidence.profile.key_fingerprint
            )?;
            Ok(ExitStatus::Ok)
        }
        Err(refusal) => Ok(exit::refused(&refusal)),
    }
}

/// Every check in order; the outer error is a failure to check (unreadable file), the inner
/// one a refusal of the report.
fn check(args: &VerifyReportArgs, evidence: &Evidence) -> Result<Result<(), EvidenceError>> {
    let (parameters, key) = revealed(&args.profile)?;
    if parameters.key_fingerprint != evidence.profile.key_fingerprint {
        return Ok(Err(EvidenceError::WrongKey {
            committed: evidence.profile.key_fingerprint.clone(),
            revealed: parameters.key_fingerprint,
        }));
    }
    if let Some(d) = evidence
        .profile
        .first_difference(&parameters, ["the report has", "the profile has"])
    {
        return Ok(Err(tampered(format!(
            "the profile is not the report's: {d}"
        ))));
    }
    if let Some(c) = &evidence.commitment {
        if let Err(e) = c.open(&parameters, &key) {
            return Ok(Err(e));
        }
    }
    for input in &evidence.inputs {
        let (sha256, _) = file_sha256(Path::new(&input.path))
            .with_context(|| format!("the {} recorded in the report", input.role))?;
        if sha256 != input.sha256 {
            return Ok(Err(tampered(format!(
                "{} ({}): SHA-256 {sha256}, the report recorded {}: the input changed",
                input.path, input.role, input.sha256
            ))));
        }
    }
    let recomputed = recompute(args, evidence)?;
    let stored = serde_json::to_value(evidence)?;
    let again: Value = serde_json::from_str(&recomputed.to_json()?)?;
    // Both sides through the same text round trip, so that floats compare exactly.
    let stored: Value = serde_json::from_str(&stored.to_string())?;
    if let Some(m) = first_mismatch(&stored, &again, NOT_RECOMPUTED) {
        return Ok(Err(tampered(format!("recomputed from the inputs, {m}"))));
    }
    // Last, the page: every number in it comes from evidence.json, now confirmed.
    let html_path = args.dir.join(HTML_FILE);
    let page = std::fs::read(&html_path).map_err(|e| anyhow!("{}: {e}", html_path.display()))?;
    if page != html::render(evidence)?.as_bytes() {
        return Ok(Err(tampered(format!(
            "{}: the page is not what {EVIDENCE_FILE} renders: one of them was altered",
            html_path.display()
        ))));
    }
    Ok(Ok(()))
}

fn tampered(message: String) -> EvidenceError {
    EvidenceError::Tampered(message)
}

/// Runs the recorded command again, in this process, into a temporary report directory, and
/// reads back its evidence. Only `detect` and `audit` over files are run: nothing that writes
/// outside the temporary directory or reaches the network.
fn recompute(args: &VerifyReportArgs, evidence: &Evidence) -> Result<Evidence> {
    let Some((command, rest)) = evidence.rerun.split_first() else {
        bail!("{EVIDENCE_FILE}: no command to recompute");
    };
    let scratch = std::env::temp_dir().join(format!(
        "tracemark-verify-{}-{}",
        std::process::id(),
        watermark_core::evidence::utc_timestamp().replace(':', "")
    ));
    let report_dir = scratch.join("report");
    let mut argv: Vec<std::ffi::OsString> = vec!["tracemark".into(), command.into()];
    argv.extend(["--profile".into(), args.profile.clone().into_os_string()]);
    argv.extend(["--report".into(), report_dir.clone().into_os_string()]);
    argv.extend(rest.iter().map(Into::into));
    let cli = Cli::try_parse_from(&argv)
        .map_err(|e| anyhow!("{EVIDENCE_FILE}: the recorded command does not parse: {e}"))?;
    let mut sink = std::io::sink();
    let result = match &cli.command {
        Command::Detect(a)
            if !a.inputs.iter().any(|p| p.as_os_str() == "-") && !a.inputs.is_empty() =>
        {
            super::detect::run(a, &mut sink)
        }
        Command::Audit(a)
            if a.curve.is_none()
                && a.live.suspect_url.is_none()
                && a.suspect.as_deref() != Some(Path::new("-")) =>
        {
            super::audit::run(a, &mut sink)
        }
        _ => bail!("{EVIDENCE_FILE}: the recorded command is not a detect or audit over files"),
    };
    let read_back = result.and_then(|_| Ok(Evidence::read(&report_dir.join(EVIDENCE_FILE))?));
    let _ = std::fs::remove_dir_all(&scratch);
    read_back.context("recomputing the report")
}
