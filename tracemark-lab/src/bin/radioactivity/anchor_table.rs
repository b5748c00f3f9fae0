//! The closed audits at the anchor's budget: their verdicts, their cumulative curves, and the
//! curves' plot.

use std::path::Path;

use anyhow::{Context, Result};
use tracemark_lab::radioactivity::anchor::{curve_at, ScaledClosed};

use super::{Args, Row};

/// Scored-tuple marks of the curve table: the main table's closed budget, doubled up to the
/// target (which is always the last mark).
fn marks(target: u64) -> Vec<u64> {
    let mut marks: Vec<u64> = std::iter::successors(Some(6_000u64), |m| Some(m * 2))
        .take_while(|&m| m < target)
        .collect();
    marks.push(target);
    marks
}

fn scaled(rows: &[Row]) -> Vec<(f64, &ScaledClosed)> {
    rows.iter()
        .filter_map(|r| r.anchor.as_ref().map(|a| (r.rho, a)))
        .collect()
}

/// Prints the verdict table and the curve table (nothing when the audits were skipped).
pub(super) fn print(rows: &[Row], args: &Args, prompts: usize, seconds: f64) {
    let rows = scaled(rows);
    if rows.is_empty() {
        return;
    }
    println!();
    println!(
        "Closed audits at the anchor's budget: each student answers queries ({} held-out prompts in turn, each query\n\
         with its own seed, T = {}, ≤ {} tokens) until its unsupervised audit has scored {} tuples (at most {} queries)",
        prompts, args.student_temperature, args.max_tokens, args.anchor_scored, args.anchor_max_queries
    );
    println!(
        "{:>5} {:>8} {:>9} | {:^17} | {:^17}",
        "ρ", "queries", "sampled", "closed", "closed, superv."
    );
    println!(
        "{:>5} {:>8} {:>9} | {:>8} {:>8} | {:>8} {:>8}",
        "", "", "tokens", "log10 p", "scored", "log10 p", "scored"
    );
    for (rho, a) in &rows {
        println!(
            "{:>4}% {:>8} {:>9} | {:>8.1} {:>8} | {:>8.1} {:>8}",
            rho * 100.0,
            a.queried.queries,
            a.queried.sampled_tokens,
            a.closed.header.score.log10_p_value,
            a.closed.header.score.scored,
            a.supervised.header.score.log10_p_value,
            a.supervised.header.score.scored
        );
    }
    let marks = marks(args.anchor_scored);
    println!();
    println!(
        "Cumulative curve of the unsupervised closed audits: log10 p after this many scored tuples"
    );
    print!("{:>5} |", "ρ");
    for m in &marks {
        print!(" {:>8}", format!("{}k", m / 1000));
    }
    println!();
    for (rho, a) in &rows {
        print!("{:>4}% |", rho * 100.0);
        for point in curve_at(&a.curve, &marks) {
            match point {
                Some(p) => print!(" {:>8.1}", p.log10_p_value),
                None => print!(" {:>8}", "—"),
            }
        }
        println!();
    }
    println!(
        "(— : the student's answers ran out of new tuples before this mark.) Querying and scoring took {:.0} s\n\
         on {} threads.",
        seconds, args.threads
    );
}

/// −log10 p against scored tuples for each ρ > 0, both on log axes.
pub(super) fn plot(rows: &[Row], path: &Path) -> Result<()> {
    use tracemark_plot::{Chart, ReferenceLine, Scale, Series};
    let mut chart = Chart::new(
        "Closed audits of n-gram students as the budget grows",
        "scored tuples",
        "-log10 p",
    )
    .with_reference(ReferenceLine::horizontal(6.0, "FPR 1e-6"));
    for (rho, a) in scaled(rows).into_iter().filter(|(rho, _)| *rho > 0.0) {
        let points = a
            .curve
            .iter()
            .map(|p| (p.scored as f64, -p.log10_p_value))
            .filter(|&(_, y)| y > 0.0)
            .collect();
        chart = chart.with_series(Series::line_points(format!("ρ = {}%", rho * 100.0), points));
    }
    chart.x.scale = Scale::Log10;
    chart.y.scale = Scale::Log10;
    let png = chart.render_png(800, 500)?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
