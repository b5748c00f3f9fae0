//! PNG charts for tracemark's reports: lines and markers, labelled axes with nice ticks, a legend
//! and a title.
//!
//! Everything is drawn here, text included (a built-in 5×7 pixel font), and encoded by the
//! pure-Rust `png` crate, so a chart renders the same on any machine: no system fonts, no C
//! libraries. plotters was the alternative; its text needs a system font or a bundled TTF.
//!
//! ```
//! use tracemark_plot::{Chart, ReferenceLine, Series};
//!
//! let chart = Chart::new("Detection vs length", "tokens", "log10 p")
//!     .with_series(Series::line_points("γ=0.25 δ=2", vec![(25.0, -2.0), (200.0, -11.5)]))
//!     .with_reference(ReferenceLine::horizontal(-6.0, "threshold"));
//! let png = chart.render_png(640, 400)?;
//! assert_eq!(&png[1..4], b"PNG");
//! # Ok::<(), tracemark_plot::PlotError>(())
//! ```

pub mod canvas;
pub mod font;
pub mod ticks;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use canvas::{Canvas, Marker, Rect};
use ticks::Ticks;

/// What can go wrong drawing or saving a chart.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The requested image is too small to hold a chart, or too large to allocate sensibly.
    #[error("a {width}x{height} image cannot hold a chart (from {min}x{min} to {max}x{max})")]
    Size {
        width: u32,
        height: u32,
        min: u32,
        max: u32,
    },
    /// An explicit axis range is empty or not finite, or not positive on a log axis.
    #[error("invalid {axis} range [{lo}, {hi}]")]
    InvalidRange {
        axis: &'static str,
        lo: f64,
        hi: f64,
    },
    /// The PNG encoder failed.
    #[error("png encoding failed: {0}")]
    Encode(#[from] png::EncodingError),
    /// Writing the output file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A colour, 8 bits per channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

/// Series colours, in the order series take them: ten hues far apart.
pub const PALETTE: [Rgb; 10] = [
    Rgb(31, 119, 180),
    Rgb(255, 127, 14),
    Rgb(44, 160, 44),
    Rgb(214, 39, 40),
    Rgb(148, 103, 189),
    Rgb(140, 86, 75),
    Rgb(227, 119, 194),
    Rgb(127, 127, 127),
    Rgb(188, 189, 34),
    Rgb(23, 190, 207),
];

const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];
const WHITE: Rgb = Rgb(255, 255, 255);
const INK: Rgb = Rgb(20, 20, 20);
const GRID: Rgb = Rgb(225, 225, 225);
const REFERENCE: Rgb = Rgb(90, 90, 90);

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// Points joined in the order given.
    Line,
    /// Markers only.
    Points,
    /// Both.
    #[default]
    LinePoints,
}

/// One named set of (x, y) points. Points with a NaN or infinite coordinate (or a non-positive
/// one on a log axis) are skipped, and a line breaks there rather than jumping over them.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub style: Style,
    /// `None` takes the next colour of [`PALETTE`].
    pub color: Option<Rgb>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>, style: Style) -> Self {
        Series {
            name: name.into(),
            points,
            style,
            color: None,
        }
    }

    pub fn line(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, Style::Line)
    }

    pub fn points(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, Style::Points)
    }

    pub fn line_points(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, Style::LinePoints)
    }

    pub fn with_color(mut self, color: Rgb) -> Self {
        self.color = Some(color);
        self
    }
}

/// Where a reference line runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reference {
    /// y = value.
    Horizontal(f64),
    /// x = value.
    Vertical(f64),
    /// y = x (for measured-vs-nominal plots).
    Identity,
}

/// A dashed grey line for a threshold or an ideal; listed in the legend when labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceLine {
    pub at: Reference,
    pub label: String,
}

impl ReferenceLine {
    pub fn horizontal(y: f64, label: impl Into<String>) -> Self {
        ReferenceLine {
            at: Reference::Horizontal(y),
            label: label.into(),
        }
    }

    pub fn vertical(x: f64, label: impl Into<String>) -> Self {
        ReferenceLine {
            at: Reference::Vertical(x),
            label: label.into(),
        }
    }

    pub fn identity(label: impl Into<String>) -> Self {
        ReferenceLine {
            at: Reference::Identity,
            label: label.into(),
        }
    }
}

/// How an axis maps values to position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    #[default]
    Linear,
    /// Powers of ten equally spaced; values ≤ 0 are skipped.
    Log10,
}

/// One axis: its label, scale and an optional fixed range (in data units).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Axis {
    pub label: String,
    pub scale: Scale,
    /// `None` fits the data (and reference lines), widened to the enclosing nice ticks.
    pub range: Option<(f64, f64)>,
}

impl Axis {
    fn to_axis(self_scale: Scale, v: f64) -> Option<f64> {
        let t = match self_scale {
            Scale::Linear => v,
            Scale::Log10 if v > 0.0 => v.log10(),
            Scale::Log10 => return None,
        };
        t.is_finite().then_some(t)
    }

    fn ticks(&self, name: &'static str, data: &[f64], target: usize) -> Result<Ticks, PlotError> {
        if let Some((lo, hi)) = self.range {
            let bad = PlotError::InvalidRange { axis: name, lo, hi };
            let (Some(a), Some(b)) = (Self::to_axis(self.scale, lo), Self::to_axis(self.scale, hi))
            else {
                return Err(bad);
            };
            if a >= b {
                return Err(bad);
            }
            return Ok(match self.scale {
                Scale::Linear => ticks::linear(a, b, target, false),
                Scale::Log10 => ticks::log10(a, b, false),
            });
        }
        let lo = data.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if data.is_empty() {
            match self.scale {
                Scale::Linear => (0.0, 1.0),
                Scale::Log10 => (0.0, 1.0),
            }
        } else {
            (lo, hi)
        };
        Ok(match self.scale {
            Scale::Linear => ticks::linear(lo, hi, target, true),
            Scale::Log10 => ticks::log10(lo, hi, true),
        })
    }
}

/// A chart: title, two axes, series and reference lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    pub series: Vec<Series>,
    pub reference_lines: Vec<ReferenceLine>,
}

/// Smallest and largest accepted image side, in pixels.
pub const MIN_SIDE: u32 = 160;
pub const MAX_SIDE: u32 = 8192;

/// A rendered chart before encoding: RGB pixels, and where the plot area landed (for tests and
/// callers that want to draw more).
#[derive(Debug, Clone)]
pub struct Image {
    pub canvas: Canvas,
    pub plot_area: Rect,
}

impl Image {
    /// The colour at (x, y), `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        self.canvas.get(x, y)
    }

    /// The image as PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>, PlotError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.canvas.width, self.canvas.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header()?;
            writer.write_image_data(&self.canvas.pixels)?;
            writer.finish()?;
        }
        Ok(out)
    }
}

impl Chart {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Chart {
            title: title.into(),
            x: Axis {
                label: x_label.into(),
                ..Axis::default()
            },
            y: Axis {
                label: y_label.into(),
                ..Axis::default()
            },
            series: Vec::new(),
            reference_lines: Vec::new(),
        }
    }

    pub fn with_series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    pub fn with_reference(mut self, line: ReferenceLine) -> Self {
        self.reference_lines.push(line);
        self
    }

    pub fn x_log10(mut self) -> Self {
        self.x.scale = Scale::Log10;
        self
    }

    pub fn y_log10(mut self) -> Self {
        self.y.scale = Scale::Log10;
        self
    }

    /// Fixes the x range (data units) instead of fitting the data.
    pub fn x_range(mut self, lo: f64, hi: f64) -> Self {
        self.x.range = Some((lo, hi));
        self
    }

    /// Fixes the y range (data units) instead of fitting the data.
    pub fn y_range(mut self, lo: f64, hi: f64) -> Self {
        self.y.range = Some((lo, hi));
        self
    }

    /// Renders and encodes the chart as PNG bytes.
    pub fn render_png(&self, width: u32, height: u32) -> Result<Vec<u8>, PlotError> {
        self.render(width, height)?.to_png()
    }

    /// Renders the chart into a PNG file.
    pub fn save_png(&self, path: &Path, width: u32, height: u32) -> Result<(), PlotError> {
        let bytes = self.render_png(width, height)?;
        std::fs::write(path, bytes).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The plotted data as CSV (`series,x,y`, one row per point), so a reader can redraw it.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("series,x,y\n");
        for s in &self.series {
            let name = if s.name.contains([',', '"', '\n']) {
                format!("\"{}\"", s.name.replace('"', "\"\""))
            } else {
                s.name.clone()
            };
            for (x, y) in &s.points {
                let _ = writeln!(out, "{name},{x},{y}");
            }
        }
        out
    }

    /// Writes [`Chart::to_csv`] to a file.
    pub fn save_csv(&self, path: &Path) -> Result<(), PlotError> {
        std::fs::write(path, self.to_csv()).map_err(|source| PlotError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Draws the chart into an RGB image.
    pub fn render(&self, width: u32, height: u32) -> Result<Image, PlotError> {
        let size_err = PlotError::Size {
            width,
            height,
            min: MIN_SIDE,
            max: MAX_SIDE,
        };
        if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
            return Err(size_err);
        }
        let base: u32 = if width >= 560 && height >= 360 { 2 } else { 1 };
        let pad = i64::from(4 * base);
        let text_h = i64::from(font::text_height(base));

        // Axis coordinates of every drawable point, per series.
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let projected: Vec<Vec<Option<(f64, f64)>>> = self
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .map(|&(x, y)| {
                        let p = Axis::to_axis(self.x.scale, x).zip(Axis::to_axis(self.y.scale, y));
                        if let Some((a, b)) = p {
                            xs.push(a);
                            ys.push(b);
                        }
                        p
                    })
                    .collect()
            })
            .collect();
        for r in &self.reference_lines {
            match r.at {
                Reference::Horizontal(v) => ys.extend(Axis::to_axis(self.y.scale, v)),
                Reference::Vertical(v) => xs.extend(Axis::to_axis(self.x.scale, v)),
                Reference::Identity => {}
            }
        }

        let y_target = ((height / base).saturating_sub(60) / 35).clamp(2, 8) as usize;
        let yt = self.y.ticks("y", &ys, y_target)?;
        let y_label_w = yt
            .labels
            .iter()
            .map(|l| font::text_width(l, base))
            .max()
            .unwrap_or(0);

        // Legend: series, then labelled reference lines.
        let swatch = i64::from(16 * base);
        let mut entries: Vec<(String, LegendKey)> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let color = s.color.unwrap_or(PALETTE[i % PALETTE.len()]);
                (s.name.clone(), LegendKey::Series(s.style, color, i))
            })
            .collect();
        entries.extend(
            self.reference_lines
                .iter()
                .filter(|r| !r.label.is_empty())
                .map(|r| (r.label.clone(), LegendKey::Reference)),
        );
        let max_legend_w = i64::from(width) / 3;
        let max_chars =
            ((max_legend_w - swatch - 4 * pad) / i64::from(font::ADVANCE * base)).max(3) as usize;
        let entries: Vec<(String, LegendKey)> = entries
            .into_iter()
            .map(|(name, k)| (truncate(&name, max_chars), k))
            .collect();
        let legend_w = if entries.is_empty() {
            0
        } else {
            let text_w = entries
                .iter()
                .map(|(n, _)| i64::from(font::text_width(n, base)))
                .max()
                .unwrap_or(0);
            swatch + text_w + 4 * pad
        };

        let title_scale = if font::text_width(&self.title, base + 1) + 16 < width {
            base + 1
        } else {
            base
        };
        let title_h = i64::from(font::text_height(title_scale));
        let tick_len = i64::from(3 * base);
        let left = 2 * pad + text_h + 2 * pad + i64::from(y_label_w) + tick_len + pad;
        let top = 2 * pad + title_h + 3 * pad;
        let bottom = tick_len + pad + text_h + 3 * pad + text_h + 2 * pad;
        let right = if legend_w > 0 {
            legend_w + 3 * pad
        } else {
            6 * pad
        };
        let plot = Rect {
            x: left,
            y: top,
            w: i64::from(width) - left - right,
            h: i64::from(height) - top - bottom,
        };
        if plot.w < 60 || plot.h < 40 {
            return Err(size_err);
        }

        // Fewer x ticks when their labels would collide.
        let mut x_target = (plot.w / i64::from(50 * base)).clamp(2, 10) as usize;
        let xt = loop {
            let t = self.x.ticks("x", &xs, x_target)?;
            let widest = t
                .labels
                .iter()
                .map(|l| i64::from(font::text_width(l, base)))
                .max()
                .unwrap_or(0);
            if x_target <= 2 || (widest + 4 * pad) * t.values.len() as i64 <= plot.w {
                break t;
            }
            x_target -= 1;
        };

        let map = Mapper {
            plot,
            x: (xt.lo, xt.hi),
            y: (yt.lo, yt.hi),
        };
        let mut c = Canvas::new(width, height, WHITE);

        // Grid.
        for &v in &xt.values {
            let px = map.px(v);
            c.line(
                (px, plot.y as f64),
                (px, plot.bottom() as f64),
                GRID,
                1,
                None,
                plot,
            );
        }
        for &v in &yt.values {
            let py = map.py(v);
            c.line(
                (plot.x as f64, py),
                (plot.right() as f64, py),
                GRID,
                1,
                None,
                plot,
            );
        }

        // Reference lines, under the data.
        let dash = Some((6 * base, 4 * base));
        for r in &self.reference_lines {
            match r.at {
                Reference::Horizontal(v) => {
                    if let Some(t) = Axis::to_axis(self.y.scale, v) {
                        let py = map.py(t);
                        let (a, b) = (plot.x as f64, plot.right() as f64);
                        c.line((a, py), (b, py), REFERENCE, base, dash, plot);
                    }
                }
                Reference::Vertical(v) => {
                    if let Some(t) = Axis::to_axis(self.x.scale, v) {
                        let px = map.px(t);
                        let (a, b) = (plot.y as f64, plot.bottom() as f64);
                        c.line((px, a), (px, b), REFERENCE, base, dash, plot);
                    }
                }
                Reference::Identity => {
                    // Sampled along x so that y = x is right on any mix of scales; dashes are
                    // counted per segment, so draw one long segment when both scales agree.
                    let n = if self.x.scale == self.y.scale { 1 } else { 200 };
                    let pts: Vec<Option<(f64, f64)>> = (0..=n)
                        .map(|i| {
                            let tx = xt.lo + (xt.hi - xt.lo) * i as f64 / n as f64;
                            let v = match self.x.scale {
                                Scale::Linear => tx,
                                Scale::Log10 => 10f64.powf(tx),
                            };
                            Axis::to_axis(self.y.scale, v).map(|ty| (tx, ty))
                        })
                        .collect();
                    polyline(&mut c, &map, &pts, REFERENCE, base, dash);
                }
            }
        }

        // Series.
        let marker_clip = Rect {
            x: plot.x - 8 * i64::from(base),
            y: plot.y - 8 * i64::from(base),
            w: plot.w + 16 * i64::from(base),
            h: plot.h + 16 * i64::from(base),
        };
        for (i, (s, pts)) in self.series.iter().zip(&projected).enumerate() {
            let color = s.color.unwrap_or(PALETTE[i % PALETTE.len()]);
            if matches!(s.style, Style::Line | Style::LinePoints) {
                polyline(&mut c, &map, pts, color, base, None);
            }
            if matches!(s.style, Style::Points | Style::LinePoints) {
                for &(tx, ty) in pts.iter().flatten() {
                    let (px, py) = (map.px(tx).round() as i64, map.py(ty).round() as i64);
                    if plot.contains(px, py) {
                        let shape = MARKERS[i % MARKERS.len()];
                        let r = i64::from(3 * base);
                        c.marker(px, py, r, shape, color, marker_clip);
                    }
                }
            }
        }

        // Frame, ticks and their labels.
        c.stroke_rect(plot, INK);
        for (v, label) in xt.values.iter().zip(&xt.labels) {
            let px = map.px(*v).round() as i64;
            let all = c.bounds();
            for d in 1..=tick_len {
                c.set(px, plot.bottom() + d, INK, all);
            }
            let w = i64::from(font::text_width(label, base));
            c.text(px - w / 2, plot.bottom() + tick_len + pad, label, base, INK);
        }
        for (v, label) in yt.values.iter().zip(&yt.labels) {
            let py = map.py(*v).round() as i64;
            let all = c.bounds();
            for d in 1..=tick_len {
                c.set(plot.x - d, py, INK, all);
            }
            let w = i64::from(font::text_width(label, base));
            c.text(
                plot.x - tick_len - pad - w,
                py - text_h / 2,
                label,
                base,
                INK,
            );
        }

        // Axis labels and title.
        let xw = i64::from(font::text_width(&self.x.label, base));
        let xl_y = plot.bottom() + tick_len + pad + text_h + 3 * pad;
        c.text(plot.x + (plot.w - xw) / 2, xl_y, &self.x.label, base, INK);
        let yw = i64::from(font::text_width(&self.y.label, base));
        let yl_y = (plot.y + (plot.h - yw) / 2).max(0);
        c.text_vertical(2 * pad, yl_y, &self.y.label, base, INK);
        let tw = i64::from(font::text_width(&self.title, title_scale));
        let tx = ((i64::from(width) - tw) / 2).max(pad);
        c.text(tx, 2 * pad, &self.title, title_scale, INK);

        // Legend, to the right of the plot so it never hides data.
        if legend_w > 0 {
            let lx = plot.right() + 3 * pad;
            let row_h = text_h + 2 * pad;
            let rows = (entries.len() as i64).min((plot.h - 2 * pad) / row_h);
            let frame = Rect {
                x: lx,
                y: plot.y,
                w: legend_w,
                h: rows * row_h + 2 * pad,
            };
            c.stroke_rect(frame, Rgb(180, 180, 180));
            for (k, (name, key)) in entries.iter().take(rows as usize).enumerate() {
                let y = plot.y + 2 * pad + k as i64 * row_h;
                let mid = (y + text_h / 2) as f64;
                let (sx0, sx1) = ((lx + pad) as f64, (lx + pad + swatch) as f64);
                let all = c.bounds();
                match *key {
                    LegendKey::Series(style, color, i) => {
                        if matches!(style, Style::Line | Style::LinePoints) {
                            c.line((sx0, mid), (sx1, mid), color, base, None, all);
                        }
                        if matches!(style, Style::Points | Style::LinePoints) {
                            let cx = lx + pad + swatch / 2;
                            let shape = MARKERS[i % MARKERS.len()];
                            c.marker(cx, mid as i64, i64::from(3 * base), shape, color, all);
                        }
                    }
                    LegendKey::Reference => {
                        c.line((sx0, mid), (sx1, mid), REFERENCE, base, dash, all);
                    }
                }
                c.text(lx + 2 * pad + swatch, y, name, base, INK);
            }
        }

        Ok(Image {
            canvas: c,
            plot_area: plot,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum LegendKey {
    /// Style, colour and index (for the marker shape).
    Series(Style, Rgb, usize),
    Reference,
}

/// Axis coordinates to pixels.
struct Mapper {
    plot: Rect,
    x: (f64, f64),
    y: (f64, f64),
}

impl Mapper {
    fn px(&self, t: f64) -> f64 {
        self.plot.x as f64 + (t - self.x.0) / (self.x.1 - self.x.0) * (self.plot.w - 1) as f64
    }

    fn py(&self, t: f64) -> f64 {
        self.plot.bottom() as f64
            - (t - self.y.0) / (self.y.1 - self.y.0) * (self.plot.h - 1) as f64
    }
}

/// Joins consecutive drawable points; a `None` (skipped point) breaks the line.
fn polyline(
    c: &mut Canvas,
    map: &Mapper,
    pts: &[Option<(f64, f64)>],
    color: Rgb,
    thickness: u32,
    dash: Option<(u32, u32)>,
) {
    for w in pts.windows(2) {
        if let [Some(a), Some(b)] = w {
            let p0 = (map.px(a.0), map.py(a.1));
            let p1 = (map.px(b.0), map.py(b.1));
            c.line(p0, p1, color, thickness, dash, map.plot);
        }
    }
}

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
    use super::*;

    fn row_has(img: &Image, y: i64, color: Rgb) -> usize {
        let p = img.plot_area;
        (p.x + 2..p.right() - 1)
            .filter(|x| img.pixel(*x as u32, y as u32) == Some(color))
            .count()
    }

    #[test]
    fn a_horizontal_series_paints_its_row() {
        let chart = Chart::new("flat", "x", "y")
            .with_series(Series::line("five", vec![(0.0, 5.0), (10.0, 5.0)]))
            .y_range(0.0, 10.0);
        let img = chart.render(800, 500).unwrap();
        let p = img.plot_area;
        let mid = p.bottom() - (p.h - 1) / 2;
        let blue = PALETTE[0];
        // The whole interior of the middle row, and nothing well above or below it.
        assert!(row_has(&img, mid, blue) >= (p.w - 4) as usize - 1);
        assert_eq!(row_has(&img, mid - 10, blue), 0);
        assert_eq!(row_has(&img, mid + 10, blue), 0);
    }

    #[test]
    fn a_png_decodes_to_the_requested_size() {
        let chart = Chart::new("t", "x", "y")
            .with_series(Series::points("p", vec![(1.0, 2.0), (3.0, 4.0)]));
        let bytes = chart.render_png(640, 400).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!((info.width, info.height), (640, 400));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        // Decoded pixels are the rendered ones.
        let img = chart.render(640, 400).unwrap();
        assert_eq!(&buf[..info.buffer_size()], &img.canvas.pixels[..]);
    }

    #[test]
    fn degenerate_and_empty_inputs_render() {
        let cases = [
            Chart::new("empty", "x", "y"),
            Chart::new("one", "x", "y").with_series(Series::points("p", vec![(3.0, 3.0)])),
            Chart::new("flat", "x", "y")
                .with_series(Series::line("c", vec![(0.0, 2.0), (1.0, 2.0), (2.0, 2.0)])),
            Chart::new("nan", "x", "y").with_series(Series::line_points(
                "n",
                vec![(f64::NAN, 1.0), (1.0, f64::INFINITY), (2.0, 3.0)],
            )),
            Chart::new("log", "x", "y")
                .x_log10()
                .y_log10()
                .with_series(Series::line("l", vec![(0.0, -1.0), (1e-3, 1e-3)]))
                .with_reference(ReferenceLine::identity("y = x")),
        ];
        for chart in cases {
            let img = chart.render(400, 300).unwrap();
            assert_eq!(img.canvas.pixels.len(), 400 * 300 * 3);
        }
    }

    #[test]
    fn a_break_at_a_nan_leaves_a_gap() {
        let pts = vec![
            (0.0, 1.0),
            (1.0, 1.0),
            (2.0, f64::NAN),
            (3.0, 1.0),
            (4.0, 1.0),
        ];
        let chart = Chart::new("gap", "x", "y")
            .with_series(Series::line("g", pts))
            .y_range(0.0, 2.0);
        let img = chart.render(800, 500).unwrap();
        let p = img.plot_area;
        let mid = p.bottom() - (p.h - 1) / 2;
        let x_at = |t: f64| (p.x as f64 + t / 4.0 * (p.w - 1) as f64).round() as u32;
        let blue = PALETTE[0];
        assert_eq!(img.pixel(x_at(0.5), mid as u32), Some(blue));
        assert_ne!(img.pixel(x_at(2.0), mid as u32), Some(blue));
        assert_eq!(img.pixel(x_at(3.5), mid as u32), Some(blue));
    }

    #[test]
    fn bad_sizes_and_ranges_are_typed_errors() {
        let chart = Chart::new("t", "x", "y");
        assert!(matches!(chart.render(10, 10), Err(PlotError::Size { .. })));
        assert!(matches!(
            chart.render(100_000, 500),
            Err(PlotError::Size { .. })
        ));
        let bad = Chart::new("t", "x", "y").y_range(1.0, 1.0);
        assert!(matches!(
            bad.render(400, 300),
            Err(PlotError::InvalidRange { axis: "y", .. })
        ));
        let bad = Chart::new("t", "x", "y").x_log10().x_range(0.0, 1.0);
        assert!(matches!(
            bad.render(400, 300),
            Err(PlotError::InvalidRange { axis: "x", .. })
        ));
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

    /// Charts whose PNG bytes are pinned: between them they draw every feature (both text
    /// scales, the title fallback, every style and marker, palette wrap-around, an explicit
    /// colour, gaps, clipped markers, fixed and fitted ranges, log and mixed scales, all three
    /// reference lines with and without labels, legend truncation and overflow).
    fn pinned_charts() -> [(&'static str, Chart, u32, u32, &'static [u8]); 2] {
        let mut every = Chart::new("Every feature of the chart", "x value", "y value")
            .y_range(-2.0, 12.0)
            .with_reference(ReferenceLine::horizontal(3.5, "threshold"))
            .with_reference(ReferenceLine::vertical(7.0, ""))
            .with_reference(ReferenceLine::identity("y = x"));
        for i in 0..12 {
            let k = f64::from(i);
            let mut pts: Vec<(f64, f64)> = (0..=10)
                .map(|n| (f64::from(n), k + (f64::from(n) * 0.7 + k).sin() * 1.5))
                .collect();
            pts[4].1 = f64::NAN;
            let name = if i == 3 {
                "a series name far too long to fit in the legend".to_string()
            } else {
                format!("series {i}")
            };
            let style = [Style::Line, Style::Points, Style::LinePoints][i as usize % 3];
            let mut s = Series::new(name, pts, style);
            if i == 5 {
                s = s.with_color(Rgb(0, 0, 0));
            }
            every = every.with_series(s);
        }
        let mixed = Chart::new(
            "A title too long for the larger text at this width",
            "nominal",
            "measured",
        )
        .x_log10()
        .with_series(Series::line_points(
            "m",
            vec![(-1.0, 0.2), (1e-3, 1e-3), (1e-2, 0.02), (0.1, 0.08), (1.0, 0.9)],
        ))
        .with_reference(ReferenceLine::identity("ideal"))
        .with_reference(ReferenceLine::horizontal(0.5, "half"));
        [
            (
                "every_feature.png",
                every,
                900,
                540,
                include_bytes!("../testdata/every_feature.png"),
            ),
            (
                "mixed_scales_small.png",
                mixed,
                400,
                300,
                include_bytes!("../testdata/mixed_scales_small.png"),
            ),
        ]
    }

    /// Rendering must not drift silently. A deliberate change to the drawing replaces the files
    /// in `testdata/` with the renderings this test writes to the temp dir (look at them first).
    #[test]
    fn rendered_png_bytes_are_pinned() {
        let mut changed = Vec::new();
        for (name, chart, w, h, expected) in pinned_charts() {
            let bytes = chart.render_png(w, h).unwrap();
            if bytes != expected {
                let out = std::env::temp_dir().join(format!("tracemark-plot-{name}"));
                std::fs::write(&out, &bytes).unwrap();
                changed.push(out.display().to_string());
            }
        }
        assert!(changed.is_empty(), "renderings changed: {changed:?}");
    }

    #[test]
    fn csv_quotes_awkward_names() {
        let chart = Chart::new("t", "x", "y")
            .with_series(Series::line("a,b", vec![(1.0, 2.5)]))
            .with_series(Series::line("c", vec![(0.0, -1.0)]));
        assert_eq!(chart.to_csv(), "series,x,y\n\"a,b\",1,2.5\nc,0,-1\n");
    }
}
