//! Robustness: detection after the text is edited token by token, pasted into human text, or
//! paraphrased by the model, measured on the reference configurations.

mod copy_paste;
mod edits;
mod paraphrase;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use super::config::{EvalConfig, SamplingKind, WmConfig};
use super::results::Timings;
use super::run::EvalInputs;
use super::texts::{Grid, Texts};
use super::Result;

pub use copy_paste::PasteRow;
pub use edits::EditRow;
pub use paraphrase::ParaphraseRow;

/// The section's numbers.
#[derive(Debug)]
pub(super) struct Robustness {
    /// The configuration copy-paste and paraphrase use (the first reference configuration).
    pub reference: WmConfig,
    pub edits: Vec<EditRow>,
    pub paste: Vec<PasteRow>,
    pub paraphrase: Option<ParaphraseRow>,
}

/// Measures the section, timed as "edits, copy-paste" and "paraphrase".
pub(super) fn measure(
    cfg: &EvalConfig,
    inputs: &EvalInputs<'_>,
    grid: &Grid,
    texts: &Texts,
    timings: &mut Timings,
    log: &mut impl FnMut(&str),
) -> Result<Robustness> {
    let t0 = Instant::now();
    let reference = reference_configs(&grid.configs);
    let edits = edits::rows(cfg, grid, texts, &reference)?;
    let r = reference[0];
    let (green, wm) = (&grid.greens[r], &texts.wm[r]);
    let plain = texts.plain_of(grid.configs[r].sampling);
    let paste = copy_paste::rows(cfg, inputs, green, wm, plain)?;
    timings.record("edits, copy-paste", t0);

    let t0 = Instant::now();
    log("paraphrasing");
    let paraphrase = paraphrase::row(cfg, inputs, green, wm, plain)?;
    timings.record("paraphrase", t0);
    Ok(Robustness {
        reference: grid.configs[r],
        edits,
        paste,
        paraphrase,
    })
}

/// The reference configurations: γ = 0.25, δ = 2 with multinomial sampling (the default γ and
/// δ), one per scheme; the first configuration when the grid has none of them. The first is the
/// one copy-paste and paraphrase use.
fn reference_configs(configs: &[WmConfig]) -> Vec<usize> {
    let picked: Vec<usize> = (0..configs.len())
        .filter(|&i| {
            let c = configs[i];
            c.gamma == 0.25 && c.delta == 2.0 && c.sampling == SamplingKind::Multinomial
        })
        .collect();
    if picked.is_empty() {
        vec![0]
    } else {
        picked
    }
}

/// The robustness section: token edits, copy-paste, and the paraphrase when there is one.
pub(super) fn write(md: &mut String, r: &Robustness, out: &Path) -> Result<()> {
    let _ = writeln!(md, "## Robustness\n");
    edits::write(md, &r.reference, &r.edits, out)?;
    copy_paste::write(md, &r.reference, &r.paste, out)?;
    if let Some(p) = &r.paraphrase {
        paraphrase::write(md, p);
    }
    Ok(())
}
