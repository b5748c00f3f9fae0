//! Quality: the perplexity of plain and watermarked texts under the unwatermarked model.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tracemark_plot::{Chart, Series};

use super::config::{EvalConfig, SamplingKind, WmConfig};
use super::generation::Generated;
use super::power::PowerRow;
use super::report::{num, plot, table};
use super::scoring::{mean, median};
use super::texts::{Grid, Texts};
use super::Result;

/// One line of the quality table.
#[derive(Debug, Clone, Serialize)]
pub struct QualityRow {
    /// `None` for the plain texts.
    pub config: Option<WmConfig>,
    pub sampling: SamplingKind,
    pub mean_ppl: f64,
    pub median_ppl: f64,
    pub mean_z: f64,
}

/// A row for the plain texts of each sampling, then one per configuration of that sampling,
/// with the mean z of its power row at the longest length.
pub(super) fn rows(
    cfg: &EvalConfig,
    grid: &Grid,
    texts: &Texts,
    power: &[PowerRow],
) -> Vec<QualityRow> {
    let row = |config: Option<WmConfig>, sampling, set: &[Generated], mean_z| QualityRow {
        config,
        sampling,
        mean_ppl: mean(set.iter().map(Generated::perplexity)),
        median_ppl: median(set.iter().map(Generated::perplexity).collect()),
        mean_z,
    };
    let mut quality = Vec::new();
    for &s in &cfg.samplings {
        quality.push(row(None, s, texts.plain_of(s), f64::NAN));
        for (c, wm) in grid
            .configs
            .iter()
            .zip(&texts.wm)
            .filter(|(c, _)| c.sampling == s)
        {
            let z = power
                .iter()
                .find(|r| r.config == *c && r.length == cfg.max_tokens)
                .map_or(f64::NAN, |r| r.mean_z);
            quality.push(row(Some(*c), s, wm, z));
        }
    }
    quality
}

/// The quality section: the table and a z-against-perplexity chart per sampling.
pub(super) fn write(
    md: &mut String,
    cfg: &EvalConfig,
    rows: &[QualityRow],
    out: &Path,
) -> Result<()> {
    let _ = writeln!(md, "## Quality\n");
    let _ = writeln!(
        md,
        "Perplexity of each text's tokens under the model without watermark (the log-probabilities \
         of the unbiased distribution at each generated step), for plain and watermarked texts of \
         the same prompts; mean z at T = {}. In the plots, δ grows along each line.\n",
        cfg.max_tokens
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.sampling.label().to_string(),
                r.config.map_or("plain".to_string(), |c| {
                    format!("γ={} δ={} {}", c.gamma, c.delta, c.scheme.label())
                }),
                num(r.mean_ppl, 2),
                num(r.median_ppl, 2),
                num(r.mean_z, 2),
            ]
        })
        .collect();
    md.push_str(&table(
        &["sampling", "texts", "mean PPL", "median PPL", "mean z"],
        &table_rows,
    ));
    md.push('\n');
    for &s in &cfg.samplings {
        let mut chart = Chart::new(
            format!("z-score vs perplexity ({})", s.label()),
            "perplexity (unwatermarked model)",
            "mean z-score",
        );
        for &k in &cfg.schemes {
            for &g in &cfg.gammas {
                let pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter_map(|r| {
                        let c = r.config?;
                        (c.sampling == s && c.scheme == k && c.gamma == g)
                            .then_some((r.mean_ppl, r.mean_z))
                    })
                    .collect();
                chart = chart.with_series(Series::line_points(format!("{} γ={g}", k.label()), pts));
            }
        }
        let base: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.config.is_none() && r.sampling == s)
            .map(|r| (r.mean_ppl, 0.0))
            .collect();
        chart = chart.with_series(Series::points("plain", base));
        md.push_str(&plot(&chart, out, &format!("quality-{}.png", s.label()))?);
    }
    Ok(())
}
