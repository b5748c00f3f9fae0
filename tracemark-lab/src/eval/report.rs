//! Markdown helpers for the report, and its plots.

use std::fmt::Write as _;
use std::path::Path;

use tracemark_plot::Chart;

use super::Result;

/// Plot size in pixels.
const PLOT_W: u32 = 900;
const PLOT_H: u32 = 540;

/// Saves a chart as `out_dir/name` and returns the Markdown that shows it.
pub fn plot(chart: &Chart, out_dir: &Path, name: &str) -> Result<String> {
    chart.save_png(&out_dir.join(name), PLOT_W, PLOT_H)?;
    Ok(format!("![{}]({name})\n\n", chart.title))
}

/// A Markdown table.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.join(" | "));
    }
    out
}

/// A rate as a percentage with one decimal ("—" when there was nothing to count).
pub fn pct(rate: f64) -> String {
    if rate.is_nan() {
        "—".into()
    } else {
        format!("{:.1}%", 100.0 * rate)
    }
}

/// A number with `d` decimals ("—" for NaN).
pub fn num(x: f64, d: usize) -> String {
    if x.is_nan() {
        "—".into()
    } else {
        format!("{x:.d$}")
    }
}

/// A rate as "k/n".
pub fn frac(k: usize, n: usize) -> String {
    format!("{k}/{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_a_rule_under_the_header() {
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
        assert_eq!(pct(0.1234), "12.3%");
        assert_eq!(num(f64::NAN, 2), "—");
    }
}
