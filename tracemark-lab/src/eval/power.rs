//! Power: how often watermarked texts are detected, by configuration and length.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tracemark_plot::{Chart, Series};

use super::config::{EvalConfig, SamplingKind, SchemeKind, WmConfig};
use super::report::{num, pct, plot, table};
use super::scoring::{mean_z, scores_at, tpr, z_over_4, FPR_1E3, FPR_1E5};
use super::texts::{Grid, Texts};
use super::Result;

/// One line of the power table.
#[derive(Debug, Clone, Serialize)]
pub struct PowerRow {
    pub config: WmConfig,
    pub length: usize,
    pub texts: usize,
    pub tpr_1e3: f64,
    pub tpr_1e5: f64,
    pub z_over_4: f64,
    pub mean_z: f64,
    /// Plain texts of the same sampling flagged at 1e-3 with this configuration's key.
    pub plain_flagged_1e3: f64,
}

/// A row per (configuration, length T), each text truncated to its first T tokens; the plain
/// texts of the same sampling are scored with the configuration's key as controls.
pub(super) fn rows(cfg: &EvalConfig, grid: &Grid, texts: &Texts) -> Result<Vec<PowerRow>> {
    let mut power = Vec::new();
    for ((c, g), wm) in grid.configs.iter().zip(&grid.greens).zip(&texts.wm) {
        let plain = texts.plain_of(c.sampling);
        for &t in &cfg.lengths {
            let scores = scores_at(g, &grid.prompt_ids, wm, t)?;
            let plain_scores = scores_at(g, &grid.prompt_ids, plain, t)?;
            power.push(PowerRow {
                config: *c,
                length: t,
                texts: scores.len(),
                tpr_1e3: tpr(&scores, FPR_1E3),
                tpr_1e5: tpr(&scores, FPR_1E5),
                z_over_4: z_over_4(&scores),
                mean_z: mean_z(&scores),
                plain_flagged_1e3: tpr(&plain_scores, FPR_1E3),
            });
        }
    }
    Ok(power)
}

/// The power section: the table, the anchor against the paper, the charts.
pub(super) fn write(
    md: &mut String,
    cfg: &EvalConfig,
    rows: &[PowerRow],
    out: &Path,
) -> Result<()> {
    let _ = writeln!(md, "## Power\n");
    let _ = writeln!(
        md,
        "True-positive rate at false-positive rates 1e-3 and 1e-5 (exact p-value ≤ α, one key), \
         and the share with z > 4, by length T (each text truncated to its first T tokens). The \
         last column is the share of *plain* texts of the same prompts and sampling flagged at \
         1e-3 with the same key. Kirchenbauer et al. report 98.4% detection at z > 4 for T = 200, \
         γ = 0.5, δ = 2, multinomial sampling, on OPT-1.3B.\n"
    );
    let mut table_rows = Vec::new();
    for r in rows {
        table_rows.push(vec![
            format!("{}", r.config.gamma),
            format!("{}", r.config.delta),
            r.config.scheme.label().to_string(),
            r.config.sampling.label().to_string(),
            r.length.to_string(),
            pct(r.tpr_1e3),
            pct(r.tpr_1e5),
            pct(r.z_over_4),
            num(r.mean_z, 2),
            pct(r.plain_flagged_1e3),
        ]);
    }
    md.push_str(&table(
        &[
            "γ",
            "δ",
            "scheme",
            "sampling",
            "T",
            "TPR@1e-3",
            "TPR@1e-5",
            "z>4",
            "mean z",
            "plain flagged@1e-3",
        ],
        &table_rows,
    ));
    if let Some(anchor) = rows.iter().find(|r| {
        r.config.gamma == 0.5
            && r.config.delta == 2.0
            && r.config.sampling == SamplingKind::Multinomial
            && r.config.scheme == SchemeKind::Window1
            && r.length == 200
    }) {
        let _ = writeln!(
            md,
            "\nAnchor: γ = 0.5, δ = 2, window 1, multinomial, T = 200: **{} at z > 4** here \
             ({} texts) against 98.4% for OPT-1.3B in Kirchenbauer et al.\n",
            pct(anchor.z_over_4),
            anchor.texts
        );
    }
    md.push('\n');
    write_charts(md, cfg, rows, out)
}

/// One chart per (sampling, scheme): TPR at 1e-3 against T, a line per (γ, δ).
fn write_charts(md: &mut String, cfg: &EvalConfig, rows: &[PowerRow], out: &Path) -> Result<()> {
    for &s in &cfg.samplings {
        for &k in &cfg.schemes {
            let mut chart = Chart::new(
                format!("TPR at FPR 1e-3: {}, {}", k.label(), s.label()),
                "tokens T",
                "true-positive rate",
            )
            .y_range(0.0, 1.05);
            for &g in &cfg.gammas {
                for &d in &cfg.deltas {
                    let pts = rows
                        .iter()
                        .filter(|r| {
                            r.config.sampling == s
                                && r.config.scheme == k
                                && r.config.gamma == g
                                && r.config.delta == d
                        })
                        .map(|r| (r.length as f64, r.tpr_1e3))
                        .collect();
                    chart = chart.with_series(Series::line_points(format!("γ={g} δ={d}"), pts));
                }
            }
            let name = format!(
                "power-{}-{}.png",
                s.label(),
                if k == SchemeKind::Window1 {
                    "window1"
                } else {
                    "selfseeded"
                }
            );
            md.push_str(&plot(&chart, out, &name)?);
        }
    }
    Ok(())
}
