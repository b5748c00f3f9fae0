//! One run of the evaluation, section after section.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use tracemark_model::generate::Generator;

use super::config::EvalConfig;
use super::prompts::EvalPrompt;
use super::results::{self, Outcome, Results, Timings};
use super::texts::{self, Grid};
use super::{false_positives, power, quality, robustness, theory};
use super::{Error, Result};
use crate::corpus::HumanDoc;

/// What a run works on.
#[derive(Debug)]
pub struct EvalInputs<'a> {
    pub generator: &'a Generator,
    pub prompts: Vec<EvalPrompt>,
    pub corpus: Vec<HumanDoc>,
    /// How the model was loaded, for the report ("exact Q8_0 kernels", "fast_matmul").
    pub model_note: String,
}

/// Runs the whole evaluation and writes `report.md`, `results.json` and the PNG plots into
/// `out_dir`; `log` receives progress lines.
pub fn run(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    out_dir: &Path,
    mut log: impl FnMut(&str),
) -> Result<Outcome> {
    check(cfg, inputs, out_dir)?;
    let started = Instant::now();
    let mut timings = Timings::default();
    let grid = Grid::new(cfg, inputs)?;
    let t0 = Instant::now();
    let texts = texts::generate(cfg, inputs, &grid, &mut log)?;
    timings.record("generation", t0);
    let mut md = introduction(cfg, inputs, &grid);

    let t0 = Instant::now();
    let power = power::rows(cfg, &grid, &texts)?;
    power::write(&mut md, cfg, &power, out_dir)?;
    timings.record("power", t0);
    let theory = theory::rows(&grid, &texts)?;
    theory::write(&mut md, &theory, out_dir)?;
    let quality = quality::rows(cfg, &grid, &texts, &power);
    quality::write(&mut md, cfg, &quality, out_dir)?;
    timings.record("power, theory, quality", t0);

    let t0 = Instant::now();
    log("scoring human text");
    let tokenizer = inputs.generator.tokenizer();
    let fpr = false_positives::rows(cfg, &inputs.corpus, tokenizer, grid.vocab)?;
    false_positives::write(&mut md, cfg, &fpr, out_dir)?;
    timings.record("false positives", t0);

    let robust = robustness::measure(cfg, inputs, &grid, &texts, &mut timings, &mut log)?;
    robustness::write(&mut md, &robust, out_dir)?;
    timings.record("total", started);

    let results = Results {
        config: cfg.clone(),
        model_note: inputs.model_note.clone(),
        key_fingerprint: grid.key.fingerprint(),
        power,
        theory,
        quality,
        fpr,
        edits: robust.edits,
        paste: robust.paste,
        paraphrase: robust.paraphrase,
        timings: timings.into_list(),
    };
    results::write(&mut md, results, out_dir)
}

/// Refuses settings that cannot produce a report, and creates `out_dir`.
fn check(cfg: &EvalConfig, inputs: &EvalInputs<'_>, out_dir: &Path) -> Result<()> {
    cfg.validate()?;
    if inputs.prompts.len() < cfg.prompts {
        return Err(Error::Config(format!(
            "{} prompts asked for, the prompts file has {}",
            cfg.prompts,
            inputs.prompts.len()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// The report's title and the paragraph that says what was run.
fn introduction(cfg: &EvalConfig, inputs: &EvalInputs<'_>, grid: &Grid) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# tracemark evaluation report\n");
    let _ = writeln!(
        md,
        "Size `{:?}`; model: the default SmolLM2-135M-Instruct ({}); {} prompts per configuration \
         (from `tracemark-lab/data/eval-prompts.jsonl`), {} tokens each (stop tokens masked until \
         then); generation key {} (fingerprint). Every number below was computed by this run.\n",
        cfg.size,
        inputs.model_note,
        cfg.prompts,
        cfg.max_tokens,
        grid.key.fingerprint()
    );
    md
}
