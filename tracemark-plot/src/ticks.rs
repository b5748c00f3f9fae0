//! Axis ticks at "nice" values (1, 2 or 5 × 10^k) and their labels.

/// The ticks of one axis, in the axis's own coordinates (log10 of the value on a log axis).
#[derive(Debug, Clone, PartialEq)]
pub struct Ticks {
    /// The axis's lower end.
    pub lo: f64,
    /// The axis's upper end.
    pub hi: f64,
    /// Tick positions, ascending, all within [lo, hi].
    pub values: Vec<f64>,
    /// The label of each tick, in the data's own units.
    pub labels: Vec<String>,
}

/// The nice step (1, 2 or 5 × 10^k) nearest above `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let exp = raw.log10().floor();
    let base = 10f64.powf(exp);
    let frac = raw / base;
    let m = if frac <= 1.0 + 1e-9 {
        1.0
    } else if frac <= 2.0 + 1e-9 {
        2.0
    } else if frac <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * base
}

/// Ticks for a linear axis showing [lo, hi] with about `target` intervals. With `widen`, the
/// axis grows to the enclosing ticks so that both ends are labelled; otherwise it keeps exactly
/// [lo, hi] (an explicit range) and the ticks are those inside it.
pub fn linear(lo: f64, hi: f64, target: usize, widen: bool) -> Ticks {
    let (lo, hi) = widen_degenerate(lo, hi);
    let step = nice_step((hi - lo) / target.max(1) as f64);
    // Ticks are integer multiples of the step, so no error accumulates along the axis.
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let (lo, hi, first, last) = if widen {
        let a = (lo / step + 1e-9).floor() as i64;
        let b = (hi / step - 1e-9).ceil() as i64;
        (a as f64 * step, b as f64 * step, a, b)
    } else {
        (lo, hi, first, last)
    };
    let values: Vec<f64> = (first..=last).map(|k| k as f64 * step).collect();
    let labels = values.iter().map(|v| format_tick(*v, step)).collect();
    Ticks {
        lo,
        hi,
        values,
        labels,
    }
}

/// Ticks for a log10 axis; `lo` and `hi` are already log10 of the data. Ticks fall on powers of
/// ten, at most about ten of them.
pub fn log10(lo: f64, hi: f64, widen: bool) -> Ticks {
    let (mut a, mut b) = (lo.floor() as i64, hi.ceil() as i64);
    if a == b {
        a -= 1;
        b += 1;
    }
    let every = ((b - a) as usize).div_ceil(10).max(1) as i64;
    let (lo, hi) = if widen {
        (a as f64, b as f64)
    } else {
        (lo, hi)
    };
    let values: Vec<f64> = (a..=b)
        .filter(|e| e.rem_euclid(every) == 0)
        .map(|e| e as f64)
        .filter(|e| *e >= lo - 1e-9 && *e <= hi + 1e-9)
        .collect();
    let labels = values.iter().map(|e| format_power(*e as i64)).collect();
    Ticks {
        lo,
        hi,
        values,
        labels,
    }
}

/// A range of zero width becomes a small one around the value, so a single point or a constant
/// series still gets an axis.
pub fn widen_degenerate(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi > lo {
        return (lo, hi);
    }
    let half = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
    (lo - half, lo + half)
}

/// A tick label with just the decimals the step needs; exponent form for very large or small
/// magnitudes.
pub fn format_tick(v: f64, step: f64) -> String {
    if v.abs() < step * 1e-6 {
        return "0".to_string();
    }
    let step_exp = step.log10().floor() as i32;
    let v_exp = v.abs().log10().floor() as i32;
    if v.abs() >= 1e6 || step < 1e-4 {
        let digits = (v_exp - step_exp).clamp(0, 6) as usize;
        return format!("{v:.digits$e}");
    }
    let decimals = (-step_exp).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// 10^e as a label: plain digits near 1, exponent form further out.
pub fn format_power(e: i64) -> String {
    match e {
        0..=4 => format!("{}", 10i64.pow(e as u32)),
        -3..=-1 => format!("{:.*}", (-e) as usize, 10f64.powi(e as i32)),
        _ => format!("1e{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.13), 0.2);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1.0), 1.0);
        assert!((nice_step(0.0003) - 0.0005).abs() < 1e-15);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn linear_ticks_cover_the_data_with_labelled_ends() {
        let t = linear(0.03, 0.97, 5, true);
        assert_eq!(t.lo, 0.0);
        assert!((t.hi - 1.0).abs() < 1e-12);
        assert_eq!(t.labels, ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let t = linear(-7.0, 23.0, 3, true);
        assert_eq!(t.labels, ["-10", "0", "10", "20", "30"]);
    }

    #[test]
    fn explicit_ranges_are_kept() {
        let t = linear(0.0, 1.05, 5, false);
        assert_eq!((t.lo, t.hi), (0.0, 1.05));
        assert_eq!(t.labels.last().map(String::as_str), Some("1.0"));
    }

    #[test]
    fn degenerate_ranges_get_width() {
        let t = linear(5.0, 5.0, 5, true);
        assert!(t.lo < 5.0 && t.hi > 5.0 && t.values.len() >= 2);
        let t = linear(0.0, 0.0, 5, true);
        assert!(t.lo < 0.0 && t.hi > 0.0);
        let t = linear(f64::NAN, 1.0, 5, true);
        assert_eq!((t.lo, t.hi), (0.0, 1.0));
    }

    #[test]
    fn log_ticks_fall_on_powers_of_ten() {
        let t = log10((2e-5f64).log10(), (0.3f64).log10(), true);
        assert_eq!(t.labels, ["1e-5", "1e-4", "0.001", "0.01", "0.1", "1"]);
        let t = log10(-3.0, -3.0, true);
        assert_eq!(t.values, [-4.0, -3.0, -2.0]);
        let t = log10(-40.0, 0.0, true);
        assert!(t.values.len() <= 11);
    }

    #[test]
    fn labels_have_the_decimals_the_step_needs() {
        assert_eq!(format_tick(0.30000000000000004, 0.1), "0.3");
        assert_eq!(format_tick(-1e-17, 0.1), "0");
        assert_eq!(format_tick(2e-5, 1e-5), "2e-5");
        assert_eq!(format_tick(2_500_000.0, 500_000.0), "2.5e6");
        assert_eq!(format_tick(150.0, 50.0), "150");
    }
}
