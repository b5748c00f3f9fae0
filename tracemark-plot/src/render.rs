//! Drawing a chart: first the layout (text sizes, the margins around the plot area, ticks whose
//! labels fit), then one step per layer in paint order, so that later layers sit on top:
//! grid, reference lines, series, frame and ticks, axis labels and title, legend.

use crate::canvas::{Canvas, Marker, Rect};
use crate::legend::Legend;
use crate::ticks::Ticks;
use crate::{font, Axis, Chart, Image, PlotError, Reference, Rgb, Scale, Series, Style};
use crate::{MAX_SIDE, MIN_SIDE, PALETTE};

/// Marker shapes, in the order series take them.
const MARKERS: [Marker; 5] = [
    Marker::Circle,
    Marker::Square,
    Marker::Triangle,
    Marker::Diamond,
    Marker::Cross,
];
const WHITE: Rgb = Rgb(255, 255, 255);
pub(crate) const INK: Rgb = Rgb(20, 20, 20);
const GRID: Rgb = Rgb(225, 225, 225);
pub(crate) const REFERENCE: Rgb = Rgb(90, 90, 90);

/// The colour of the `i`-th series: its own, or the palette's next.
pub(crate) fn series_color(series: &Series, i: usize) -> Rgb {
    series.color.unwrap_or(PALETTE[i % PALETTE.len()])
}

/// The marker shape of the `i`-th series.
pub(crate) fn series_marker(i: usize) -> Marker {
    MARKERS[i % MARKERS.len()]
}

/// Whether a style joins its points with a line.
pub(crate) fn has_line(style: Style) -> bool {
    matches!(style, Style::Line | Style::LinePoints)
}

/// Whether a style marks each point.
pub(crate) fn has_markers(style: Style) -> bool {
    matches!(style, Style::Points | Style::LinePoints)
}

/// Text and spacing sizes. Everything scales with the base text scale, which doubles on large
/// images so that a chart reads the same at any size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Metrics {
    /// Text scale of labels, ticks and legend.
    pub base: u32,
    /// The unit of spacing between elements.
    pub pad: i64,
    /// Height of one line of text at `base`.
    pub text_h: i64,
    /// Length of a tick mark outside the frame.
    pub tick_len: i64,
}

impl Metrics {
    fn for_image(width: u32, height: u32) -> Self {
        let base: u32 = if width >= 560 && height >= 360 { 2 } else { 1 };
        Metrics {
            base,
            pad: i64::from(4 * base),
            text_h: i64::from(font::text_height(base)),
            tick_len: i64::from(3 * base),
        }
    }

    /// The dash pattern (on, off) of reference lines.
    pub fn dash(&self) -> Option<(u32, u32)> {
        Some((6 * self.base, 4 * self.base))
    }

    /// The radius of a series marker.
    pub fn marker_radius(&self) -> i64 {
        i64::from(3 * self.base)
    }
}

/// The chart's data in axis coordinates (log10 of the value on a log axis).
struct Projected {
    /// Per series, every point; `None` where it cannot be drawn (so lines break there).
    series: Vec<Vec<Option<(f64, f64)>>>,
    /// Every x the x axis must show: drawable points, then vertical reference lines.
    xs: Vec<f64>,
    /// Every y the y axis must show: drawable points, then horizontal reference lines.
    ys: Vec<f64>,
}

/// Where everything goes, decided before any pixel is drawn.
struct Layout {
    width: u32,
    metrics: Metrics,
    title_scale: u32,
    plot: Rect,
    xt: Ticks,
    yt: Ticks,
    map: Mapper,
}

impl Chart {
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
        let m = Metrics::for_image(width, height);
        let projected = self.project();
        let y_target = ((height / m.base).saturating_sub(60) / 35).clamp(2, 8) as usize;
        let yt = self.y.ticks("y", &projected.ys, y_target)?;
        let legend = Legend::new(self, width, &m);
        let title_scale = self.title_scale(width, m.base);
        let plot = plot_area(width, height, &m, title_scale, &yt, legend.width());
        if plot.w < 60 || plot.h < 40 {
            return Err(size_err);
        }
        let xt = self.x_ticks(&projected.xs, plot, &m)?;
        let map = Mapper {
            plot,
            x: (xt.lo, xt.hi),
            y: (yt.lo, yt.hi),
        };
        let layout = Layout {
            width,
            metrics: m,
            title_scale,
            plot,
            xt,
            yt,
            map,
        };

        let mut c = Canvas::new(width, height, WHITE);
        draw_grid(&mut c, &layout);
        self.draw_reference_lines(&mut c, &layout);
        self.draw_series(&mut c, &layout, &projected.series);
        draw_frame_and_ticks(&mut c, &layout);
        self.draw_labels(&mut c, &layout);
        legend.draw(&mut c, plot, &m);
        Ok(Image {
            canvas: c,
            plot_area: plot,
        })
    }

    /// Axis coordinates of every point, and of the reference lines the axes must reach.
    fn project(&self) -> Projected {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        let series = self
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
        Projected { series, xs, ys }
    }

    /// The title is one step larger than other text when it fits the width.
    fn title_scale(&self, width: u32, base: u32) -> u32 {
        if font::text_width(&self.title, base + 1) + 16 < width {
            base + 1
        } else {
            base
        }
    }

    /// The x ticks: as many as the plot width suggests, fewer when their labels would collide.
    fn x_ticks(&self, xs: &[f64], plot: Rect, m: &Metrics) -> Result<Ticks, PlotError> {
        let mut target = (plot.w / i64::from(50 * m.base)).clamp(2, 10) as usize;
        loop {
            let t = self.x.ticks("x", xs, target)?;
            let widest = t
                .labels
                .iter()
                .map(|l| i64::from(font::text_width(l, m.base)))
                .max()
                .unwrap_or(0);
            if target <= 2 || (widest + 4 * m.pad) * t.values.len() as i64 <= plot.w {
                return Ok(t);
            }
            target -= 1;
        }
    }

    /// Dashed reference lines, drawn under the data.
    fn draw_reference_lines(&self, c: &mut Canvas, l: &Layout) {
        let (plot, map, base, dash) = (l.plot, &l.map, l.metrics.base, l.metrics.dash());
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
                    let pts = self.identity_points(&l.xt);
                    polyline(c, map, &pts, REFERENCE, base, dash);
                }
            }
        }
    }

    /// The line y = x in axis coordinates, across the whole x axis. It is sampled along x so
    /// that it is right on any mix of scales; dashes restart at each segment, so it is one long
    /// segment when both scales agree.
    fn identity_points(&self, xt: &Ticks) -> Vec<Option<(f64, f64)>> {
        let n = if self.x.scale == self.y.scale { 1 } else { 200 };
        (0..=n)
            .map(|i| {
                let tx = xt.lo + (xt.hi - xt.lo) * i as f64 / n as f64;
                let v = match self.x.scale {
                    Scale::Linear => tx,
                    Scale::Log10 => 10f64.powf(tx),
                };
                Axis::to_axis(self.y.scale, v).map(|ty| (tx, ty))
            })
            .collect()
    }

    /// Each series' line and markers. Lines are clipped to the plot area; a marker is drawn
    /// when its centre is inside, and may then overhang the frame a little.
    fn draw_series(&self, c: &mut Canvas, l: &Layout, projected: &[Vec<Option<(f64, f64)>>]) {
        let (plot, map, base) = (l.plot, &l.map, l.metrics.base);
        let overhang = 8 * i64::from(base);
        let marker_clip = Rect {
            x: plot.x - overhang,
            y: plot.y - overhang,
            w: plot.w + 2 * overhang,
            h: plot.h + 2 * overhang,
        };
        for (i, (s, pts)) in self.series.iter().zip(projected).enumerate() {
            let color = series_color(s, i);
            if has_line(s.style) {
                polyline(c, map, pts, color, base, None);
            }
            if has_markers(s.style) {
                for &(tx, ty) in pts.iter().flatten() {
                    let (px, py) = (map.px(tx).round() as i64, map.py(ty).round() as i64);
                    if plot.contains(px, py) {
                        let (r, shape) = (l.metrics.marker_radius(), series_marker(i));
                        c.marker(px, py, r, shape, color, marker_clip);
                    }
                }
            }
        }
    }

    /// The x label centred under the plot, the y label running up its left side, and the title
    /// centred at the top.
    fn draw_labels(&self, c: &mut Canvas, l: &Layout) {
        let (plot, m) = (l.plot, &l.metrics);
        let (base, pad) = (m.base, m.pad);
        let xw = i64::from(font::text_width(&self.x.label, base));
        let xl_y = plot.bottom() + m.tick_len + pad + m.text_h + 3 * pad;
        c.text(plot.x + (plot.w - xw) / 2, xl_y, &self.x.label, base, INK);
        let yw = i64::from(font::text_width(&self.y.label, base));
        let yl_y = (plot.y + (plot.h - yw) / 2).max(0);
        c.text_vertical(2 * pad, yl_y, &self.y.label, base, INK);
        let tw = i64::from(font::text_width(&self.title, l.title_scale));
        let tx = ((i64::from(l.width) - tw) / 2).max(pad);
        c.text(tx, 2 * pad, &self.title, l.title_scale, INK);
    }
}

/// The plot area: the image less the title above it, the y tick labels and axis label to its
/// left, the x tick labels and axis label below it, and the legend (or a margin) to its right.
fn plot_area(
    width: u32,
    height: u32,
    m: &Metrics,
    title_scale: u32,
    yt: &Ticks,
    legend_w: i64,
) -> Rect {
    let (pad, text_h, tick_len) = (m.pad, m.text_h, m.tick_len);
    let y_label_w = yt
        .labels
        .iter()
        .map(|l| font::text_width(l, m.base))
        .max()
        .unwrap_or(0);
    let title_h = i64::from(font::text_height(title_scale));
    let left = 2 * pad + text_h + 2 * pad + i64::from(y_label_w) + tick_len + pad;
    let top = 2 * pad + title_h + 3 * pad;
    let bottom = tick_len + pad + text_h + 3 * pad + text_h + 2 * pad;
    let right = if legend_w > 0 {
        legend_w + 3 * pad
    } else {
        6 * pad
    };
    Rect {
        x: left,
        y: top,
        w: i64::from(width) - left - right,
        h: i64::from(height) - top - bottom,
    }
}

/// Light grid lines at every tick, across the whole plot area.
fn draw_grid(c: &mut Canvas, l: &Layout) {
    let (plot, map) = (l.plot, &l.map);
    for &v in &l.xt.values {
        let px = map.px(v);
        let (a, b) = (plot.y as f64, plot.bottom() as f64);
        c.line((px, a), (px, b), GRID, 1, None, plot);
    }
    for &v in &l.yt.values {
        let py = map.py(v);
        let (a, b) = (plot.x as f64, plot.right() as f64);
        c.line((a, py), (b, py), GRID, 1, None, plot);
    }
}

/// The frame around the plot area, tick marks outside it, and the tick labels.
fn draw_frame_and_ticks(c: &mut Canvas, l: &Layout) {
    let (plot, map, m) = (l.plot, &l.map, &l.metrics);
    let all = c.bounds();
    c.stroke_rect(plot, INK);
    for (v, label) in l.xt.values.iter().zip(&l.xt.labels) {
        let px = map.px(*v).round() as i64;
        for d in 1..=m.tick_len {
            c.set(px, plot.bottom() + d, INK, all);
        }
        let w = i64::from(font::text_width(label, m.base));
        let y = plot.bottom() + m.tick_len + m.pad;
        c.text(px - w / 2, y, label, m.base, INK);
    }
    for (v, label) in l.yt.values.iter().zip(&l.yt.labels) {
        let py = map.py(*v).round() as i64;
        for d in 1..=m.tick_len {
            c.set(plot.x - d, py, INK, all);
        }
        let w = i64::from(font::text_width(label, m.base));
        let x = plot.x - m.tick_len - m.pad - w;
        c.text(x, py - m.text_h / 2, label, m.base, INK);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ReferenceLine, Style};

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
            vec![
                (-1.0, 0.2),
                (1e-3, 1e-3),
                (1e-2, 0.02),
                (0.1, 0.08),
                (1.0, 0.9),
            ],
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
}
