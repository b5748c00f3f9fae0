//! The evaluation report (`make eval`): power, the Theorem 4.2 check, text quality, false
//! positives on human text and robustness, measured on the default model and written as
//! Markdown tables and PNG plots.
//!
//! Every number in the report comes from the run that writes it. Generations are made once per
//! configuration at the longest length and truncated for the shorter ones; the edits, the
//! copy-paste and the paraphrase reuse them, so one model pass serves every section.
//!
//! One module per section of the report (`power`, `theory`, `quality`, `false_positives`,
//! `robustness`), each computing its rows and writing its Markdown; [`run`] calls them in report
//! order on the texts `texts` generates once for all of them.

pub mod attacks;
mod config;
mod false_positives;
pub mod generation;
mod power;
mod prompts;
mod quality;
pub mod report;
mod results;
mod robustness;
mod run;
mod scoring;
mod texts;
mod theory;

use std::path::PathBuf;

use crate::corpus::CorpusError;

pub use config::{EvalConfig, SamplingKind, SchemeKind, Size, WmConfig};
pub use false_positives::FprRow;
pub use power::PowerRow;
pub use prompts::{default_prompts_path, read_prompts, EvalPrompt};
pub use quality::QualityRow;
pub use results::{Outcome, Results};
pub use robustness::{EditRow, ParaphraseRow, PasteRow};
pub use run::{run, EvalInputs};
pub use theory::TheoryRow;

/// What the evaluation can fail on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model or its tokenizer failed.
    #[error(transparent)]
    Model(#[from] tracemark_model::Error),
    /// The watermark core refused something.
    #[error(transparent)]
    Core(#[from] watermark_core::Error),
    /// A plot could not be drawn or written.
    #[error(transparent)]
    Plot(#[from] tracemark_plot::PlotError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The human-text corpus is unreadable or empty.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// The prompts file is unreadable or empty.
    #[error("{path}: bad prompts file: {reason}")]
    Prompts { path: PathBuf, reason: String },
    /// The settings cannot produce a report.
    #[error("invalid evaluation setting: {0}")]
    Config(String),
}

/// The evaluation's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
