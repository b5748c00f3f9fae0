//! The exact (Clopper–Pearson) interval for a binomial rate: the planner's uncertainty on a
//! pilot's green rate, and the experiments' check of a false-positive rate against its target.

use super::ln_sf_pq;

/// Bisection on p in (0, 1) for the root of an increasing-in-p predicate boundary.
fn bisect(mut lo: f64, mut hi: f64, above: impl Fn(f64) -> bool) -> f64 {
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if above(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Two-sided Clopper–Pearson (exact) interval for k successes in n at confidence 1 - alpha,
/// by bisection on exact binomial tails; used to check a false-positive rate against its target.
/// n == 0 or alpha <= 0 (or NaN) gives (0, 1); k > n is treated as k = n; alpha >= 1 gives (k/n, k/n).
pub fn clopper_pearson(k: u64, n: u64, alpha: f64) -> (f64, f64) {
    if n == 0 || alpha.is_nan() || alpha <= 0.0 {
        return (0.0, 1.0);
    }
    let k = k.min(n);
    if alpha >= 1.0 {
        let r = k as f64 / n as f64;
        return (r, r);
    }
    let ln_half = (0.5 * alpha).ln();
    // Lower: P(X >= k; p) = alpha/2, increasing in p.
    let lower = if k == 0 {
        0.0
    } else {
        bisect(0.0, 1.0, |p| ln_sf_pq(n, k, p, 1.0 - p) >= ln_half)
    };
    // Upper: P(X <= k; p) = P(n - X >= n - k; 1 - p) = alpha/2, decreasing in p.
    let upper = if k == n {
        1.0
    } else {
        bisect(0.0, 1.0, |p| ln_sf_pq(n, n - k, 1.0 - p, p) <= ln_half)
    };
    (lower, upper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::binomial_ln_sf;
    use crate::stats::near;

    #[test]
    fn clopper_pearson_known_values() {
        let (lo, hi) = clopper_pearson(0, 10, 0.05);
        assert!(lo == 0.0 && (hi - 0.308_5).abs() < 1e-4);
        near(hi, 1.0 - 0.025_f64.powf(0.1), 1e-12, "k = 0 closed form");
        let (lo, hi) = clopper_pearson(5, 10, 0.05);
        assert!((lo - 0.187_1).abs() < 1e-4 && (hi - 0.812_9).abs() < 1e-4);
        near(lo, 1.0 - hi, 1e-12, "symmetry");
        let (lo, hi) = clopper_pearson(3, 1_000_000, 1e-6);
        assert!(0.0 < lo && lo < 3e-6 && hi > 3e-6 && hi < 3e-5);
        let at_lo = binomial_ln_sf(1_000_000, 3, lo);
        near(at_lo, (0.5e-6_f64).ln(), 1e-9, "lower bound is the root");
        assert_eq!(clopper_pearson(1, 0, 0.05), (0.0, 1.0));
        assert_eq!(clopper_pearson(20, 10, 0.05).1, 1.0);
    }
}
