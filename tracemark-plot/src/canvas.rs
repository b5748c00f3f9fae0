//! An RGB raster with the few primitives a chart needs: rectangles, thick clipped lines, markers
//! and text in the built-in font.

use crate::font::{self, ADVANCE, GLYPH_H, GLYPH_W};
use crate::Rgb;

/// An axis-aligned pixel rectangle; drawing can be clipped to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
}

impl Rect {
    pub fn contains(&self, x: i64, y: i64) -> bool {
        x >= self.x && x < self.x + self.w && y >= self.y && y < self.y + self.h
    }

    pub fn right(&self) -> i64 {
        self.x + self.w - 1
    }

    pub fn bottom(&self) -> i64 {
        self.y + self.h - 1
    }
}

/// Marker shapes, cycled through by series so that series stay apart without colour too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
    Cross,
}

/// Row-major RGB pixels, three bytes each.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

impl Canvas {
    pub fn new(width: u32, height: u32, background: Rgb) -> Self {
        let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
        for _ in 0..(width as usize * height as usize) {
            pixels.extend_from_slice(&[background.0, background.1, background.2]);
        }
        Canvas {
            width,
            height,
            pixels,
        }
    }

    pub fn bounds(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: i64::from(self.width),
            h: i64::from(self.height),
        }
    }

    pub fn get(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some(Rgb(self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]))
    }

    /// Paints one pixel if it lies inside both the canvas and `clip`.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb, clip: Rect) {
        if !clip.contains(x, y) || !self.bounds().contains(x, y) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[i] = c.0;
        self.pixels[i + 1] = c.1;
        self.pixels[i + 2] = c.2;
    }

    pub fn fill_rect(&mut self, r: Rect, c: Rgb) {
        let clip = self.bounds();
        for y in r.y..r.y + r.h {
            for x in r.x..r.x + r.w {
                self.set(x, y, c, clip);
            }
        }
    }

    pub fn stroke_rect(&mut self, r: Rect, c: Rgb) {
        let clip = self.bounds();
        for x in r.x..r.x + r.w {
            self.set(x, r.y, c, clip);
            self.set(x, r.bottom(), c, clip);
        }
        for y in r.y..r.y + r.h {
            self.set(r.x, y, c, clip);
            self.set(r.right(), y, c, clip);
        }
    }

    /// A line of `thickness` pixels from (x0, y0) to (x1, y1), clipped to `clip`; `dash` is
    /// (on, off) lengths in pixels along the line.
    #[allow(clippy::too_many_arguments)]
    pub fn line(
        &mut self,
        (x0, y0): (f64, f64),
        (x1, y1): (f64, f64),
        c: Rgb,
        thickness: u32,
        dash: Option<(u32, u32)>,
        clip: Rect,
    ) {
        // Clip in floating point first: a far-off endpoint would otherwise make Bresenham walk
        // millions of invisible pixels.
        let pad = f64::from(thickness);
        let Some(((x0, y0), (x1, y1))) = clip_segment(
            (x0, y0),
            (x1, y1),
            (clip.x as f64 - pad, clip.y as f64 - pad),
            (
                (clip.x + clip.w) as f64 + pad,
                (clip.y + clip.h) as f64 + pad,
            ),
        ) else {
            return;
        };
        let (mut x, mut y) = (x0.round() as i64, y0.round() as i64);
        let (xe, ye) = (x1.round() as i64, y1.round() as i64);
        let dx = (xe - x).abs();
        let dy = -(ye - y).abs();
        let sx = if x < xe { 1 } else { -1 };
        let sy = if y < ye { 1 } else { -1 };
        let mut err = dx + dy;
        let mut step: u32 = 0;
        let lo = -((thickness as i64 - 1) / 2);
        let hi = thickness as i64 / 2;
        loop {
            let on = match dash {
                Some((on, off)) if on + off > 0 => step % (on + off) < on,
                _ => true,
            };
            if on {
                for oy in lo..=hi {
                    for ox in lo..=hi {
                        self.set(x + ox, y + oy, c, clip);
                    }
                }
            }
            if x == xe && y == ye {
                break;
            }
            step = step.wrapping_add(1);
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled marker of the given radius centred on (cx, cy).
    pub fn marker(&mut self, cx: i64, cy: i64, radius: i64, shape: Marker, c: Rgb, clip: Rect) {
        let r = radius.max(1);
        for dy in -r..=r {
            for dx in -r..=r {
                let inside = match shape {
                    Marker::Circle => dx * dx + dy * dy <= r * r + r / 2,
                    Marker::Square => dx.abs() < r && dy.abs() < r,
                    Marker::Diamond => dx.abs() + dy.abs() <= r,
                    // Apex at the top, base at the bottom.
                    Marker::Triangle => 2 * dx.abs() <= dy + r,
                    Marker::Cross => dx.abs() <= r / 3 || dy.abs() <= r / 3,
                };
                if inside {
                    self.set(cx + dx, cy + dy, c, clip);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at (x, y); returns the width drawn.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: u32, c: Rgb) -> u32 {
        let clip = self.bounds();
        let s = i64::from(scale);
        for (i, ch) in text.chars().enumerate() {
            let rows = font::glyph(ch);
            let gx = x + i as i64 * i64::from(ADVANCE) * s;
            for (row, bits) in rows.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (0x10 >> col) == 0 {
                        continue;
                    }
                    for py in 0..s {
                        for px in 0..s {
                            self.set(
                                gx + i64::from(col) * s + px,
                                y + row as i64 * s + py,
                                c,
                                clip,
                            );
                        }
                    }
                }
            }
        }
        font::text_width(text, scale)
    }

    /// Draws `text` rotated a quarter turn anticlockwise (read bottom to top), its baseline on
    /// the right; (x, y) is the top-left corner of the rotated block.
    pub fn text_vertical(&mut self, x: i64, y: i64, text: &str, scale: u32, c: Rgb) {
        let w = font::text_width(text, scale);
        let h = GLYPH_H * scale;
        if w == 0 {
            return;
        }
        let mut tmp = Canvas::new(w, h, Rgb(0, 0, 0));
        tmp.text(0, 0, text, scale, Rgb(255, 255, 255));
        let clip = self.bounds();
        // A pixel (u, v) of the horizontal text lands at (v, w - 1 - u) of the rotated block.
        for v in 0..h {
            for u in 0..w {
                if tmp.get(u, v).is_some_and(|p| p.0 > 0) {
                    self.set(x + i64::from(v), y + i64::from(w - 1 - u), c, clip);
                }
            }
        }
    }
}

/// Liang–Barsky clipping of a segment to the box [lo, hi]; `None` when nothing is inside.
fn clip_segment(
    p0: (f64, f64),
    p1: (f64, f64),
    lo: (f64, f64),
    hi: (f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (p1.0 - p0.0, p1.1 - p0.1);
    let mut t0: f64 = 0.0;
    let mut t1: f64 = 1.0;
    for (p, q) in [
        (-dx, p0.0 - lo.0),
        (dx, hi.0 - p0.0),
        (-dy, p0.1 - lo.1),
        (dy, hi.1 - p0.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 || !t0.is_finite() || !t1.is_finite() {
        return None;
    }
    Some((
        (p0.0 + t0 * dx, p0.1 + t0 * dy),
        (p0.0 + t1 * dx, p0.1 + t1 * dy),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb = Rgb(255, 255, 255);
    const RED: Rgb = Rgb(255, 0, 0);

    #[test]
    fn a_clipped_far_line_draws_only_inside() {
        let mut c = Canvas::new(20, 10, WHITE);
        let clip = Rect {
            x: 5,
            y: 0,
            w: 10,
            h: 10,
        };
        c.line((-1e12, 4.0), (1e12, 4.0), RED, 1, None, clip);
        for x in 0..20 {
            let expect = if (5..15).contains(&x) { RED } else { WHITE };
            assert_eq!(c.get(x, 4), Some(expect), "x = {x}");
        }
        assert_eq!(c.get(7, 3), Some(WHITE));
    }

    #[test]
    fn dashes_leave_gaps() {
        let mut c = Canvas::new(20, 3, WHITE);
        let all = c.bounds();
        c.line((0.0, 1.0), (19.0, 1.0), RED, 1, Some((3, 2)), all);
        let painted: Vec<bool> = (0..20).map(|x| c.get(x, 1) == Some(RED)).collect();
        assert!(painted[0] && painted[2] && !painted[3] && !painted[4] && painted[5]);
    }

    #[test]
    fn vertical_text_is_the_horizontal_text_turned() {
        let mut h = Canvas::new(40, 10, WHITE);
        h.text(0, 0, "Ab", 1, RED);
        let mut v = Canvas::new(10, 40, WHITE);
        v.text_vertical(0, 0, "Ab", 1, RED);
        let w = font::text_width("Ab", 1);
        for y in 0..GLYPH_H {
            for x in 0..w {
                assert_eq!(h.get(x, y), v.get(y, w - 1 - x));
            }
        }
    }
}
