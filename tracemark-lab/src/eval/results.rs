//! A run's numbers and where they are written: `report.md` (ending with the run time) and
//! `results.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::config::EvalConfig;
use super::false_positives::FprRow;
use super::power::PowerRow;
use super::quality::QualityRow;
use super::report::table;
use super::robustness::{EditRow, ParaphraseRow, PasteRow};
use super::theory::TheoryRow;
use super::{Error, Result};

/// Every number of a run (also written as `results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: EvalConfig,
    pub model_note: String,
    pub key_fingerprint: String,
    pub power: Vec<PowerRow>,
    pub theory: Vec<TheoryRow>,
    pub quality: Vec<QualityRow>,
    pub fpr: Vec<FprRow>,
    pub edits: Vec<EditRow>,
    pub paste: Vec<PasteRow>,
    pub paraphrase: Option<ParaphraseRow>,
    /// Seconds per section.
    pub timings: Vec<(String, f64)>,
}

/// A finished run: where the report is, and its numbers.
#[derive(Debug)]
pub struct Outcome {
    pub report: PathBuf,
    pub results: Results,
}

/// Seconds per section of a run, in report order.
#[derive(Debug, Default)]
pub(super) struct Timings(Vec<(String, f64)>);

impl Timings {
    /// Records the seconds since `start` under `section`.
    pub fn record(&mut self, section: &str, start: Instant) {
        self.0
            .push((section.to_string(), start.elapsed().as_secs_f64()));
    }

    /// The sections and their seconds.
    pub fn into_list(self) -> Vec<(String, f64)> {
        self.0
    }
}

/// Appends the run-time table to the report `md`, then writes it and `results` into `out_dir`.
pub(super) fn write(md: &mut String, results: Results, out_dir: &Path) -> Result<Outcome> {
    let _ = writeln!(md, "## Run time\n");
    let rows: Vec<Vec<String>> = results
        .timings
        .iter()
        .map(|(k, v)| vec![k.clone(), format!("{v:.0} s")])
        .collect();
    md.push_str(&table(&["section", "seconds"], &rows));
    let report = out_dir.join("report.md");
    write_file(&report, md.as_bytes())?;
    let json = serde_json::to_vec_pretty(&results).map_err(|e| Error::Io {
        path: out_dir.join("results.json"),
        source: std::io::Error::other(e),
    })?;
    write_file(&out_dir.join("results.json"), &json)?;
    Ok(Outcome { report, results })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
