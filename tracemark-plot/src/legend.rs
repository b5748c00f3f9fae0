//! The legend, to the right of the plot so that it never hides data: one row per series, then
//! one per labelled reference line, each with a swatch drawn like the line it names.

use crate::canvas::{Canvas, Rect};
use crate::render::{has_line, has_markers, series_color, series_marker, Metrics, INK, REFERENCE};
use crate::{font, Chart, Rgb, Style};

const FRAME: Rgb = Rgb(180, 180, 180);

/// How an entry's swatch is drawn.
#[derive(Debug, Clone, Copy)]
enum Key {
    /// Style, colour and index (for the marker shape).
    Series(Style, Rgb, usize),
    Reference,
}

/// The legend's entries (names already shortened to fit) and its size.
pub(crate) struct Legend {
    entries: Vec<(String, Key)>,
    /// Width of a swatch.
    swatch: i64,
    /// Outer width; 0 when there is nothing to list.
    width: i64,
}

impl Legend {
    /// The legend of `chart` on an image `image_width` wide; it takes at most about a third of
    /// the width, names longer than that are cut short.
    pub fn new(chart: &Chart, image_width: u32, m: &Metrics) -> Self {
        let (base, pad) = (m.base, m.pad);
        let swatch = i64::from(16 * base);
        let mut entries: Vec<(String, Key)> = chart
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), Key::Series(s.style, series_color(s, i), i)))
            .collect();
        entries.extend(
            chart
                .reference_lines
                .iter()
                .filter(|r| !r.label.is_empty())
                .map(|r| (r.label.clone(), Key::Reference)),
        );
        let max_legend_w = i64::from(image_width) / 3;
        let max_chars =
            ((max_legend_w - swatch - 4 * pad) / i64::from(font::ADVANCE * base)).max(3) as usize;
        let entries: Vec<(String, Key)> = entries
            .into_iter()
            .map(|(name, k)| (truncate(&name, max_chars), k))
            .collect();
        let width = if entries.is_empty() {
            0
        } else {
            let text_w = entries
                .iter()
                .map(|(n, _)| i64::from(font::text_width(n, base)))
                .max()
                .unwrap_or(0);
            swatch + text_w + 4 * pad
        };
        Legend {
            entries,
            swatch,
            width,
        }
    }

    /// Outer width in pixels; 0 when there is no legend.
    pub fn width(&self) -> i64 {
        self.width
    }

    /// Draws the legend beside `plot`, top-aligned with it; rows that do not fit its height
    /// are left out.
    pub fn draw(&self, c: &mut Canvas, plot: Rect, m: &Metrics) {
        if self.width == 0 {
            return;
        }
        let (base, pad, text_h, swatch) = (m.base, m.pad, m.text_h, self.swatch);
        let lx = plot.right() + 3 * pad;
        let row_h = text_h + 2 * pad;
        let rows = (self.entries.len() as i64).min((plot.h - 2 * pad) / row_h);
        let frame = Rect {
            x: lx,
            y: plot.y,
            w: self.width,
            h: rows * row_h + 2 * pad,
        };
        c.stroke_rect(frame, FRAME);
        let all = c.bounds();
        for (k, (name, key)) in self.entries.iter().take(rows as usize).enumerate() {
            let y = plot.y + 2 * pad + k as i64 * row_h;
            let mid = (y + text_h / 2) as f64;
            let (sx0, sx1) = ((lx + pad) as f64, (lx + pad + swatch) as f64);
            match *key {
                Key::Series(style, color, i) => {
                    if has_line(style) {
                        c.line((sx0, mid), (sx1, mid), color, base, None, all);
                    }
                    if has_markers(style) {
                        let cx = lx + pad + swatch / 2;
                        let (r, shape) = (m.marker_radius(), series_marker(i));
                        c.marker(cx, mid as i64, r, shape, color, all);
                    }
                }
                Key::Reference => {
                    c.line((sx0, mid), (sx1, mid), REFERENCE, base, m.dash(), all);
                }
            }
            c.text(lx + 2 * pad + swatch, y, name, base, INK);
        }
    }
}

/// `s` cut to `max_chars` characters, ending in ".." when cut.
fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max_chars.saturating_sub(2)).collect();
        t.push_str("..");
        t
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;
    use crate::{Chart, Rgb, Series, PALETTE};

    #[test]
    fn long_names_are_cut_with_two_dots() {
        assert_eq!(truncate("short", 5), "short");
        assert_eq!(truncate("γ=0.25 δ=2", 6), "γ=0...");
        assert_eq!(truncate("abcdef", 5), "abc..");
    }

    #[test]
    fn the_legend_shows_each_series_colour() {
        let chart = Chart::new("legend", "x", "y")
            .with_series(Series::line("a", vec![(0.0, 0.0), (1.0, 0.0)]))
            .with_series(Series::line("b", vec![(0.0, 1.0), (1.0, 1.0)]));
        let img = chart.render(800, 500).unwrap();
        let p = img.plot_area;
        let right_of_plot = |color: Rgb| {
            (p.right() as u32 + 2..800)
                .flat_map(|x| (0..500).map(move |y| (x, y)))
                .any(|(x, y)| img.pixel(x, y) == Some(color))
        };
        assert!(right_of_plot(PALETTE[0]) && right_of_plot(PALETTE[1]));
        assert!(!right_of_plot(PALETTE[2]));
    }
}
