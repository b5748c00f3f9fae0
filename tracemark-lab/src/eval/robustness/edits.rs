//! Token edits: substitutions, deletions and insertions at random positions.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tracemark_plot::{Chart, Series};
use watermark_core::Score;

use crate::eval::attacks::{apply_edit, Edit};
use crate::eval::config::{EvalConfig, SchemeKind, WmConfig};
use crate::eval::report::{num, pct, plot, table};
use crate::eval::scoring::{mean_z, score, tpr, z_over_4, FPR_1E3};
use crate::eval::texts::{Grid, Texts};
use crate::eval::Result;

/// Detection after one token edit.
#[derive(Debug, Clone, Serialize)]
pub struct EditRow {
    pub scheme: SchemeKind,
    pub edit: String,
    pub rate: f64,
    pub tpr_1e3: f64,
    pub z_over_4: f64,
    pub mean_z: f64,
}

/// A row per (reference configuration, edit, rate), rate 0 (no edit) first.
pub(super) fn rows(
    cfg: &EvalConfig,
    grid: &Grid,
    texts: &Texts,
    reference: &[usize],
) -> Result<Vec<EditRow>> {
    let mut edits = Vec::new();
    for &ci in reference {
        let g = &grid.greens[ci];
        let mut rates = vec![0.0];
        rates.extend(cfg.edit_rates.iter().copied());
        for edit in Edit::ALL {
            for (ri, &r) in rates.iter().enumerate() {
                let scores: Vec<Option<Score>> = grid
                    .prompt_ids
                    .iter()
                    .zip(&texts.wm[ci])
                    .enumerate()
                    .map(|(i, (p, x))| {
                        let seed = cfg.seed ^ ((i as u64) << 20) ^ ((ri as u64) << 8);
                        let edited = apply_edit(&x.tokens, edit, r, grid.vocab, seed ^ edit as u64);
                        score(g, p, &edited)
                    })
                    .collect::<Result<_>>()?;
                edits.push(EditRow {
                    scheme: grid.configs[ci].scheme,
                    edit: edit.name().to_string(),
                    rate: r,
                    tpr_1e3: tpr(&scores, FPR_1E3),
                    z_over_4: z_over_4(&scores),
                    mean_z: mean_z(&scores),
                });
            }
        }
    }
    Ok(edits)
}

/// The token-edit subsection: the table and the TPR-against-rate chart.
pub(super) fn write(
    md: &mut String,
    reference: &WmConfig,
    edits: &[EditRow],
    out: &Path,
) -> Result<()> {
    let _ = writeln!(
        md,
        "### Token edits\n\nEach token of the watermarked texts (γ = {}, δ = {}, {}) is \
         substituted by a uniformly random token, deleted, or followed by an inserted random \
         token, independently with the given probability; detection with the prompt, as before.\n",
        reference.gamma,
        reference.delta,
        reference.sampling.label()
    );
    let table_rows: Vec<Vec<String>> = edits
        .iter()
        .map(|r| {
            vec![
                r.scheme.label().to_string(),
                r.edit.clone(),
                format!("{:.0}%", 100.0 * r.rate),
                pct(r.tpr_1e3),
                pct(r.z_over_4),
                num(r.mean_z, 2),
            ]
        })
        .collect();
    md.push_str(&table(
        &["scheme", "edit", "rate", "TPR@1e-3", "z>4", "mean z"],
        &table_rows,
    ));
    md.push('\n');
    let mut chart = Chart::new(
        "Detection after random token edits",
        "edit rate",
        "TPR at FPR 1e-3",
    )
    .y_range(0.0, 1.05);
    let mut names: Vec<(SchemeKind, String)> =
        edits.iter().map(|r| (r.scheme, r.edit.clone())).collect();
    names.dedup();
    for (k, e) in names {
        let pts = edits
            .iter()
            .filter(|r| r.scheme == k && r.edit == e)
            .map(|r| (r.rate, r.tpr_1e3))
            .collect();
        chart = chart.with_series(Series::line_points(format!("{e}, {}", k.label()), pts));
    }
    md.push_str(&plot(&chart, out, "edits.png")?);
    Ok(())
}
