//! The audit's curve as inline SVG (drawn by tracemark-plot, that is plotters): cumulative
//! log10 p against scored tokens, with the verdict's threshold. Inline, so the report needs no
//! file and no network.

use anyhow::Result;
use tracemark_plot::{Chart, ReferenceLine, Rgb, Series};

/// The curve of `points` (scored tokens, log10 p) from the origin, with a dashed line at
/// `log10(fpr)` labelled `fpr_label`.
pub fn curve(points: &[[f64; 2]], fpr: f64, fpr_label: &str) -> Result<String> {
    let line: Vec<(f64, f64)> = std::iter::once((0.0, 0.0))
        .chain(points.iter().map(|p| (p[0], p[1])))
        .collect();
    let chart = Chart::new("", "scored tokens", "log10 p (lower is stronger evidence)")
        .with_series(Series::line("pooled test", line).with_color(Rgb(31, 95, 168)))
        .with_reference(ReferenceLine::horizontal(fpr.log10(), fpr_label));
    Ok(chart.render_svg(600, 300)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curve_is_one_svg_with_its_threshold() {
        let svg = curve(&[[10.0, -1.0], [100.0, -8.0]], 1e-6, "threshold: 1 in 10^6").unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("threshold: 1 in 10^6"));
        assert!(svg.contains("<polyline"));
        assert!(!svg.contains("<script") && !svg.contains("href"));
    }
}
