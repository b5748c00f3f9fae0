//! The Theorem 4.2 check: the measured green fraction against Kirchenbauer et al.'s lower
//! bound from the spike entropy of the same steps.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use tracemark_plot::{Chart, ReferenceLine, Series};
use watermark_core::stats::expected_green_fraction_lower_bound;
use watermark_core::GreenList;

use super::config::WmConfig;
use super::generation::Generated;
use super::report::{num, plot, table};
use super::scoring::mean;
use super::texts::{Grid, Texts};
use super::Result;

/// One line of the Theorem 4.2 check.
#[derive(Debug, Clone, Serialize)]
pub struct TheoryRow {
    pub config: WmConfig,
    pub mean_spike_entropy: f64,
    pub bound: f64,
    pub measured: f64,
    pub measured_stderr: f64,
}

/// A row per configuration: the green fraction of every generated token (no deduplication: the
/// theorem counts tokens) against the bound from the spike entropy of the same steps.
pub(super) fn rows(grid: &Grid, texts: &Texts) -> Result<Vec<TheoryRow>> {
    let mut theory = Vec::new();
    for ((c, g), wm) in grid.configs.iter().zip(&grid.greens).zip(&texts.wm) {
        let fractions = green_fractions(g, &grid.prompt_ids, wm)?;
        let spike = mean(wm.iter().flat_map(|x| x.spike_entropy.iter().copied()));
        let measured = mean(fractions.iter().copied());
        let sd = (fractions
            .iter()
            .map(|f| (f - measured).powi(2))
            .sum::<f64>()
            / (fractions.len().max(2) - 1) as f64)
            .sqrt();
        theory.push(TheoryRow {
            config: *c,
            mean_spike_entropy: spike,
            bound: expected_green_fraction_lower_bound(
                g.scheme().effective_gamma(),
                f64::from(c.delta),
                spike,
            ),
            measured,
            measured_stderr: sd / (fractions.len().max(1) as f64).sqrt(),
        });
    }
    Ok(theory)
}

/// The green fraction of each text's scored tokens (texts with none left out).
fn green_fractions(
    green: &GreenList,
    prompt_ids: &[Vec<u32>],
    texts: &[Generated],
) -> Result<Vec<f64>> {
    let mut fractions = Vec::new();
    for (p, x) in prompt_ids.iter().zip(texts) {
        let mut full = p.clone();
        let (mut green_n, mut total) = (0usize, 0usize);
        for &tok in &x.tokens {
            if let Some(is) = green.is_green(&full, tok)? {
                green_n += usize::from(is);
                total += 1;
            }
            full.push(tok);
        }
        if total > 0 {
            fractions.push(green_n as f64 / total as f64);
        }
    }
    Ok(fractions)
}

/// The theory section: the table and the measured-against-bound chart.
pub(super) fn write(md: &mut String, rows: &[TheoryRow], out: &Path) -> Result<()> {
    let _ = writeln!(md, "## Theory check (Theorem 4.2)\n");
    let _ = writeln!(
        md,
        "Mean green fraction of all generated tokens (every position with enough context, no \
         deduplication) against Kirchenbauer et al.'s lower bound γαS / (1 + (α−1)γ), S the mean \
         spike entropy of the distributions sampled from at the same steps (α = e^δ). The \
         theorem covers multinomial sampling with a green list fixed by the previous token(s); \
         greedy and self-seeded rows are shown for comparison only (self-seeding makes the green \
         set depend on the candidate, so the green share of the vocabulary is γ only on average).\n"
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.config.label(),
                num(r.mean_spike_entropy, 3),
                num(r.bound, 3),
                format!("{} ± {}", num(r.measured, 3), num(r.measured_stderr, 3)),
                if r.measured >= r.bound { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    md.push_str(&table(
        &[
            "configuration",
            "mean spike entropy",
            "bound",
            "measured (± s.e.)",
            "measured ≥ bound",
        ],
        &table_rows,
    ));
    md.push('\n');
    let mut chart = Chart::new(
        "Green fraction: measured vs Theorem 4.2 bound",
        "lower bound",
        "measured green fraction",
    )
    .with_reference(ReferenceLine::identity("measured = bound"));
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        groups
            .entry(format!(
                "{} {}",
                r.config.scheme.label(),
                r.config.sampling.label()
            ))
            .or_default()
            .push((r.bound, r.measured));
    }
    for (name, pts) in groups {
        chart = chart.with_series(Series::points(name, pts));
    }
    md.push_str(&plot(&chart, out, "theory.png")?);
    Ok(())
}
