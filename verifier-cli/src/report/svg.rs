//! The audit's curve as inline SVG: cumulative log10 p against scored tokens, with the
//! verdict's threshold. Inline, so the report needs no file and no network.

use std::fmt::Write;

use super::html::escape;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 50.0;

/// Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn label(x: f64) -> String {
    if x.abs() >= 10_000.0 {
        watermark_core::grouped(x.round() as u64)
    } else if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// The curve of `points` (scored tokens, log10 p), with a dashed line at `log10(fpr)`.
pub fn curve(points: &[[f64; 2]], fpr: f64, fpr_label: &str) -> String {
    let threshold = fpr.log10();
    let x_max = points.iter().map(|p| p[0]).fold(1.0, f64::max);
    let y_min = points
        .iter()
        .map(|p| p[1])
        .fold(threshold, f64::min)
        .min(-1.0)
        * 1.05;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + x / x_max * plot_w;
    let sy = |y: f64| TOP + y / y_min * plot_h;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="curve" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="cumulative log10 p against scored tokens">"##
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#888"/>"##
    );
    for t in ticks(0.0, x_max) {
        let x = sx(t);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="12">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            label(t)
        );
    }
    for t in ticks(y_min, 0.0) {
        let y = sy(t);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            label(t)
        );
    }
    let ty = sy(threshold);
    let _ = write!(
        svg,
        r##"<line class="threshold" x1="{LEFT}" y1="{ty:.1}" x2="{:.1}" y2="{ty:.1}" stroke="#c0392b" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="12" fill="#c0392b">{}</text>"##,
        LEFT + plot_w,
        LEFT + plot_w - 4.0,
        ty - 5.0,
        escape(fpr_label)
    );
    let mut path = format!("{:.1},{:.1}", sx(0.0), sy(0.0));
    for p in points {
        let _ = write!(path, " {:.1},{:.1}", sx(p[0]), sy(p[1]));
    }
    let _ = write!(
        svg,
        r##"<polyline class="pooled" points="{path}" fill="none" stroke="#1f5fa8" stroke-width="2"/>"##
    );
    let _ = write!(
        svg,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="13">scored tokens</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" font-size="13">log10 p (lower is stronger evidence)</text></svg>"##,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0,
        TOP + plot_h / 2.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(-31.0, 0.0), vec![-30.0, -20.0, -10.0, 0.0]);
        let svg = curve(&[[10.0, -1.0], [100.0, -8.0]], 1e-6, "threshold <1e-6>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("threshold &lt;1e-6&gt;"));
        assert!(svg.contains("<polyline class=\"pooled\""));
    }
}
