//! Charts for tracemark's reports, as PNG or SVG: lines and markers, labelled axes with nice
//! ticks, a legend and a title.
//!
//! Drawn by plotters; text is set in DejaVu Sans, shipped inside the `dejavu` crate and read by
//! ab_glyph, and PNGs are encoded by the pure-Rust `png` crate, so a chart renders the same on
//! any machine: no system fonts, no C libraries.
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

mod render;
pub mod ticks;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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
    /// plotters could not draw the chart.
    #[error("drawing failed: {0}")]
    Draw(String),
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

/// A rendered chart before encoding: 8-bit RGB pixels, row by row.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Image {
    /// The colour at (x, y), `None` outside the image.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let at = (y as usize * self.width as usize + x as usize) * 3;
        Some(Rgb(
            self.pixels[at],
            self.pixels[at + 1],
            self.pixels[at + 2],
        ))
    }

    /// The image as PNG bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>, PlotError> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width, self.height);
            enc.set_color(png::ColorType::Rgb);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header()?;
            writer.write_image_data(&self.pixels)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(&buf[..info.buffer_size()], &img.pixels[..]);
    }

    #[test]
    fn csv_quotes_awkward_names() {
        let chart = Chart::new("t", "x", "y")
            .with_series(Series::line("a,b", vec![(1.0, 2.5)]))
            .with_series(Series::line("c", vec![(0.0, -1.0)]));
        assert_eq!(chart.to_csv(), "series,x,y\n\"a,b\",1,2.5\nc,0,-1\n");
    }
}
