//! Drawing a chart with plotters: the same drawing for every backend (an RGB buffer encoded as
//! PNG, or an SVG string), text set in DejaVu Sans from the `dejavu` crate through ab_glyph, so
//! that no system font is needed. Axis ranges, ticks and their labels are ours (`ticks`), so a
//! log axis reads 1e-6, 1e-5, … and the ranges widen to round numbers.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::ticks::Ticks;
use crate::{Axis, Chart, Image, PlotError, Reference, Rgb, Scale, Series, Style};
use crate::{MAX_SIDE, MIN_SIDE, PALETTE};

/// The font family every label is set in, registered once per process.
const FAMILY: &str = "sans-serif";
const INK: RGBColor = RGBColor(20, 20, 20);
const GRID: RGBColor = RGBColor(225, 225, 225);
const REFERENCE: RGBColor = RGBColor(90, 90, 90);

/// Registers DejaVu Sans (shipped inside the `dejavu` crate) as the family of every label.
fn register_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(PlotError::Draw(
            "the bundled DejaVu Sans font did not load".into(),
        ))
    }
}

fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The colour of the `i`-th series: its own, or the palette's next.
fn series_color(series: &Series, i: usize) -> Rgb {
    series.color.unwrap_or(PALETTE[i % PALETTE.len()])
}

fn draw_error<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> PlotError {
    PlotError::Draw(e.to_string())
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

/// Text sizes in pixels: larger on larger images, so a chart reads the same at any size.
#[derive(Clone, Copy)]
struct Sizes {
    text: u32,
    title: u32,
    stroke: u32,
}

impl Sizes {
    fn for_image(width: u32, height: u32) -> Self {
        let text = (width.min(height * 3 / 2) / 45).clamp(10, 28);
        Sizes {
            text,
            title: text + text / 4,
            stroke: (text / 8).max(1),
        }
    }
}

impl Chart {
    /// Draws the chart into an RGB image.
    pub fn render(&self, width: u32, height: u32) -> Result<Image, PlotError> {
        check_size(width, height)?;
        let mut pixels = vec![255u8; width as usize * height as usize * 3];
        {
            let area = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
            self.draw(area, Sizes::for_image(width, height))?;
        }
        Ok(Image {
            width,
            height,
            pixels,
        })
    }

    /// Draws the chart as a standalone SVG document (text as `<text>`, for inline HTML).
    pub fn render_svg(&self, width: u32, height: u32) -> Result<String, PlotError> {
        check_size(width, height)?;
        let mut svg = String::new();
        {
            let area = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
            self.draw(area, Sizes::for_image(width, height))?;
        }
        Ok(svg)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        area: DrawingArea<DB, Shift>,
        sizes: Sizes,
    ) -> Result<(), PlotError>
    where
        DB::ErrorType: 'static,
    {
        register_font()?;
        let projected = self.project();
        let xt = self.x.ticks("x", &projected.xs, 8)?;
        let yt = self.y.ticks("y", &projected.ys, 6)?;
        area.fill(&WHITE).map_err(draw_error)?;
        let mut chart = ChartBuilder::on(&area)
            .caption(&self.title, (FAMILY, sizes.title).into_font().color(&INK))
            .margin(sizes.text)
            .x_label_area_size(sizes.text * 3)
            .y_label_area_size(sizes.text * 4)
            .build_cartesian_2d(xt.lo..xt.hi, yt.lo..yt.hi)
            .map_err(draw_error)?;
        let label_style = (FAMILY, sizes.text).into_font().color(&INK);
        // plotters draws the frame and the axis titles; the grid and tick labels are ours, at
        // our ticks.
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(0)
            .y_labels(0)
            .axis_style(INK)
            .x_desc(self.x.label.as_str())
            .y_desc(self.y.label.as_str())
            .axis_desc_style(label_style.clone())
            .draw()
            .map_err(draw_error)?;
        draw_ticks(&area, &mut chart, &xt, &yt, &label_style, sizes)?;
        let mut labelled = self.draw_reference_lines(&mut chart, &xt, &yt, sizes)?;
        labelled |= self.draw_series(&mut chart, &projected.series, sizes)?;
        if labelled {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.9))
                .border_style(GRID)
                .label_font(label_style)
                .draw()
                .map_err(draw_error)?;
        }
        area.present().map_err(draw_error)
    }

    /// Dashed reference lines, drawn under the data; true when one is labelled.
    fn draw_reference_lines<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Plot<'a, DB>,
        xt: &Ticks,
        yt: &Ticks,
        sizes: Sizes,
    ) -> Result<bool, PlotError>
    where
        DB::ErrorType: 'static,
    {
        let style = ShapeStyle::from(REFERENCE).stroke_width(sizes.stroke);
        let (dash, gap) = (sizes.text / 2 + 2, sizes.text / 3 + 1);
        let mut labelled = false;
        for r in &self.reference_lines {
            let points: Vec<(f64, f64)> = match r.at {
                Reference::Horizontal(v) => Axis::to_axis(self.y.scale, v)
                    .map(|t| vec![(xt.lo, t), (xt.hi, t)])
                    .unwrap_or_default(),
                Reference::Vertical(v) => Axis::to_axis(self.x.scale, v)
                    .map(|t| vec![(t, yt.lo), (t, yt.hi)])
                    .unwrap_or_default(),
                Reference::Identity => self.identity_points(xt).into_iter().flatten().collect(),
            };
            let drawn = chart
                .draw_series(DashedLineSeries::new(points, dash, gap, style))
                .map_err(draw_error)?;
            if !r.label.is_empty() {
                labelled = true;
                drawn
                    .label(r.label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            }
        }
        Ok(labelled)
    }

    /// The line y = x in axis coordinates, sampled along x so that it is right on any mix of
    /// scales.
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

    /// Each series' line (broken where a point cannot be drawn) and markers; true when one is
    /// named.
    fn draw_series<'a, DB: DrawingBackend + 'a>(
        &self,
        chart: &mut Plot<'a, DB>,
        projected: &[Vec<Option<(f64, f64)>>],
        sizes: Sizes,
    ) -> Result<bool, PlotError>
    where
        DB::ErrorType: 'static,
    {
        let mut labelled = false;
        for (i, (s, points)) in self.series.iter().zip(projected).enumerate() {
            let c = color(series_color(s, i));
            let line = ShapeStyle::from(c).stroke_width(sizes.stroke + 1);
            let radius = (sizes.text / 4).max(2) as i32;
            if matches!(s.style, Style::Line | Style::LinePoints) {
                for run in points.split(Option::is_none) {
                    let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
                    chart
                        .draw_series(LineSeries::new(run, line))
                        .map_err(draw_error)?;
                }
            }
            let markers = matches!(s.style, Style::Points | Style::LinePoints);
            let at: Vec<(f64, f64)> = points
                .iter()
                .flatten()
                .filter(|_| markers)
                .copied()
                .collect();
            // Circles, triangles and crosses in turn, so series differ in grey print too.
            let fill = c.filled();
            let drawn = match i % 3 {
                0 => chart.draw_series(at.iter().map(|&p| Circle::new(p, radius, fill))),
                1 => {
                    chart.draw_series(at.iter().map(|&p| TriangleMarker::new(p, radius + 1, fill)))
                }
                _ => chart.draw_series(
                    at.iter()
                        .map(|&p| Cross::new(p, radius, ShapeStyle::from(c).stroke_width(2))),
                ),
            }
            .map_err(draw_error)?;
            if !s.name.is_empty() {
                labelled = true;
                drawn.label(s.name.as_str()).legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (16, 0)], line)
                        + Circle::new((8, 0), if markers { radius } else { 0 }, c.filled())
                });
            }
        }
        Ok(labelled)
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
}

/// The chart context every layer draws into.
type Plot<'a, DB> = ChartContext<
    'a,
    DB,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Grid lines at our ticks inside the plot, and their labels outside it.
fn draw_ticks<'a, DB: DrawingBackend + 'a>(
    area: &DrawingArea<DB, Shift>,
    chart: &mut Plot<'a, DB>,
    xt: &Ticks,
    yt: &Ticks,
    style: &TextStyle<'_>,
    sizes: Sizes,
) -> Result<(), PlotError>
where
    DB::ErrorType: 'static,
{
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let grid = xt
        .values
        .iter()
        .map(|&v| vec![(v, yt.lo), (v, yt.hi)])
        .chain(yt.values.iter().map(|&v| vec![(xt.lo, v), (xt.hi, v)]));
    chart
        .draw_series(grid.map(|line| PathElement::new(line, GRID)))
        .map_err(draw_error)?;
    let gap = (sizes.text / 2) as i32;
    let below = style.pos(Pos::new(HPos::Center, VPos::Top));
    for (&v, label) in xt.values.iter().zip(&xt.labels) {
        let (x, y) = chart.backend_coord(&(v, yt.lo));
        area.draw(&Text::new(label.clone(), (x, y + gap), below.clone()))
            .map_err(draw_error)?;
    }
    let left = style.pos(Pos::new(HPos::Right, VPos::Center));
    for (&v, label) in yt.values.iter().zip(&yt.labels) {
        let (x, y) = chart.backend_coord(&(xt.lo, v));
        area.draw(&Text::new(label.clone(), (x - gap, y), left.clone()))
            .map_err(draw_error)?;
    }
    Ok(())
}

fn check_size(width: u32, height: u32) -> Result<(), PlotError> {
    if (MIN_SIDE..=MAX_SIDE).contains(&width) && (MIN_SIDE..=MAX_SIDE).contains(&height) {
        Ok(())
    } else {
        Err(PlotError::Size {
            width,
            height,
            min: MIN_SIDE,
            max: MAX_SIDE,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ReferenceLine;

    /// Pixels of `color` in row `y`.
    fn row_has(img: &Image, y: u32, c: Rgb) -> usize {
        (0..img.width)
            .filter(|&x| img.pixel(x, y) == Some(c))
            .count()
    }

    #[test]
    fn a_horizontal_series_paints_a_row_in_its_colour() {
        let red = Rgb(200, 0, 0);
        let chart = Chart::new("flat", "x", "y")
            .with_series(Series::line("flat", vec![(0.0, 5.0), (10.0, 5.0)]).with_color(red))
            .y_range(0.0, 10.0);
        let img = chart.render(640, 400).unwrap();
        let best = (0..img.height)
            .map(|y| row_has(&img, y, red))
            .max()
            .unwrap();
        assert!(
            best > 300,
            "the line spans most of the width: {best} pixels"
        );
    }

    #[test]
    fn text_is_drawn_with_the_bundled_font() {
        // A title only: every dark pixel above the plot is text set in DejaVu Sans.
        let chart = Chart::new("Distillation audit", "x", "y");
        let img = chart.render(640, 400).unwrap();
        let dark = (0..img.width)
            .flat_map(|x| (0..30).map(move |y| (x, y)))
            .filter(|&(x, y)| img.pixel(x, y).is_some_and(|p| p.0 < 100))
            .count();
        assert!(dark > 100, "title pixels: {dark}");
        let svg = chart.render_svg(640, 400).unwrap();
        assert!(svg.contains("Distillation audit") && svg.contains("<text"));
    }

    #[test]
    fn degenerate_gappy_and_log_charts_render() {
        let charts = [
            Chart::new("empty", "x", "y"),
            Chart::new("one", "x", "y").with_series(Series::points("p", vec![(1.0, 1.0)])),
            Chart::new("gap", "x", "y").with_series(Series::line_points(
                "g",
                vec![(0.0, 1.0), (1.0, f64::NAN), (2.0, 3.0), (3.0, 2.0)],
            )),
            Chart::new("log", "fpr", "measured")
                .x_log10()
                .y_log10()
                .with_series(Series::points(
                    "m",
                    vec![(1e-6, 2e-6), (1e-3, 9e-4), (0.0, 1.0)],
                ))
                .with_reference(ReferenceLine::identity("ideal"))
                .with_reference(ReferenceLine::vertical(1e-4, "")),
        ];
        for chart in charts {
            chart.render(320, 200).unwrap().to_png().unwrap();
            chart.render_svg(320, 200).unwrap();
        }
    }

    #[test]
    fn bad_sizes_and_ranges_are_typed_errors() {
        let chart = Chart::new("t", "x", "y");
        assert!(matches!(chart.render(10, 400), Err(PlotError::Size { .. })));
        assert!(matches!(
            chart.render_svg(400, 9000),
            Err(PlotError::Size { .. })
        ));
        let bad = Chart::new("t", "x", "y").x_range(3.0, 1.0);
        assert!(matches!(
            bad.render(400, 300),
            Err(PlotError::InvalidRange { .. })
        ));
        let bad = Chart::new("t", "x", "y").y_log10().y_range(-1.0, 1.0);
        assert!(matches!(
            bad.render(400, 300),
            Err(PlotError::InvalidRange { .. })
        ));
    }

    #[test]
    fn log_ticks_are_labelled_as_powers_in_the_svg() {
        let chart = Chart::new("t", "x", "p")
            .y_log10()
            .with_series(Series::line("s", vec![(0.0, 1e-6), (1.0, 1.0)]));
        let svg = chart.render_svg(400, 300).unwrap();
        assert!(svg.contains("\n1e-6\n") && svg.contains("\n1\n"), "{svg}");
    }
}
