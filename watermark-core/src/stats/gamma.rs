//! Gamma(n, 1) tails for scores that add one Exp(1) variable per scored token (Gumbel-max /
//! exponential-minimum watermarks: `-ln(1 - u)` per token, with u uniform under the null).
//!
//! For an integer shape n, P(Gamma(n, 1) >= x) = P(Poisson(x) <= n - 1), so the tail is a
//! finite sum of Poisson terms. Each term comes from Loader's saddle-point form (the same
//! `stirlerr` and `bd0` as the binomial), and the sum starts at its largest term, so deep
//! tails such as 1e-1000 stay finite and exact to about 1e-13 relative.

use super::{bd0, stirlerr, LN_SQRT_2PI};
use std::f64::consts::LN_10;

/// ln P(N = k) for N ~ Poisson(lambda), lambda > 0 (Loader 2000).
fn ln_poisson_pmf(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        return -lambda;
    }
    let kf = k as f64;
    -stirlerr(kf) - bd0(kf, lambda, 1.0) - LN_SQRT_2PI - 0.5 * kf.ln()
}

/// ln sum of Poisson terms from `start`, walking down (towards 0) or up, while each term is
/// smaller than the last. Ratios re-anchored to `ln_poisson_pmf` every 1024 steps, Neumaier sum.
fn ln_poisson_run(start: u64, lambda: f64, down: bool) -> f64 {
    let l0 = ln_poisson_pmf(start, lambda);
    let (mut sum, mut comp, mut term, mut k) = (1.0_f64, 0.0_f64, 1.0_f64, start);
    loop {
        if down {
            if k == 0 {
                break;
            }
            term *= k as f64 / lambda;
            k -= 1;
        } else {
            k += 1;
            term *= lambda / k as f64;
        }
        if k.abs_diff(start) % 1024 == 0 {
            term = (ln_poisson_pmf(k, lambda) - l0).exp();
        }
        let t = sum + term;
        comp += (sum - t) + term;
        sum = t;
        if term.is_nan() || term < 1e-17 * sum {
            break;
        }
    }
    l0 + (sum + comp).ln()
}

/// ln P(G >= x) for G ~ Gamma(shape, 1), the sum of `shape` independent Exp(1) variables.
/// Exact in log space (never -inf for finite x). Cost: O(sqrt(x)) terms near the mean, O(1) in
/// deep tails. Degenerate: x <= 0 gives 0; shape == 0 (G = 0) gives -inf for x > 0; x = +inf
/// gives -inf; NaN gives NaN.
pub fn gamma_ln_sf(shape: u64, x: f64) -> f64 {
    if x.is_nan() {
        f64::NAN
    } else if x <= 0.0 {
        0.0
    } else if shape == 0 || x == f64::INFINITY {
        f64::NEG_INFINITY
    } else if ((shape - 1) as f64) < x {
        // P(N <= shape - 1) with shape - 1 below the mean: terms fall as k goes down.
        ln_poisson_run(shape - 1, x, true)
    } else {
        // 1 - P(N >= shape), shape above the mean: at most about 1/2, so ln_1p is accurate.
        let upper = ln_poisson_run(shape, x, false).exp();
        (-upper).ln_1p() + 0.0
    }
}

/// log10 P(G >= x), the form reported to users. Same degenerate cases as [`gamma_ln_sf`].
pub fn gamma_log10_sf(shape: u64, x: f64) -> f64 {
    gamma_ln_sf(shape, x) / LN_10
}

#[cfg(test)]
mod tests {
    use super::super::near;
    use super::*;

    #[test]
    fn shape_one_is_the_exponential_tail() {
        for x in [1e-9, 0.3, 1.0, 7.5, 50.0, 700.0, 5000.0] {
            near(gamma_ln_sf(1, x), -x, 1e-14, &format!("x {x}"));
        }
    }

    #[test]
    fn small_shapes_match_the_closed_form() {
        // P(Gamma(n,1) >= x) = e^-x sum_{k<n} x^k / k!; near 1 it is taken as 1 minus the
        // other side's terms, so that the reference keeps its own relative accuracy.
        for n in 1..12_u64 {
            for x in [0.01, 0.5, 2.0, 9.0, 30.0] {
                let term = |k: u64| {
                    (-x + k as f64 * f64::ln(x) - super::super::ln_gamma(k as f64 + 1.0)).exp()
                };
                let lower: f64 = (0..n).map(term).sum();
                let upper: f64 = (n..n + 200).map(term).sum();
                let want = if lower > 0.5 {
                    (-upper).ln_1p()
                } else {
                    lower.ln()
                };
                near(gamma_ln_sf(n, x), want, 1e-12, &format!("n {n} x {x}"));
            }
        }
    }

    #[test]
    fn references_from_high_precision() {
        // ln of mpmath.gammainc(n, x, inf, regularized=True) at 40 digits.
        let cases = [
            (10_u64, 10.0, -0.781039568496278),
            (100, 150.0, -12.036407454461646),
            (1000, 1000.0, -0.7015932366459725),
            (1000, 2000.0, -311.22771100999898),
            (200, 10000.0, -9025.0558372020872),
            (50_000, 50_300.0, -2.4074075779589149),
        ];
        for (n, x, want) in cases {
            near(gamma_ln_sf(n, x), want, 1e-11, &format!("n {n} x {x}"));
        }
    }

    #[test]
    fn edges_and_monotonicity() {
        assert_eq!(gamma_ln_sf(5, 0.0), 0.0);
        assert_eq!(gamma_ln_sf(5, -1.0), 0.0);
        assert_eq!(gamma_ln_sf(0, 1.0), f64::NEG_INFINITY);
        assert_eq!(gamma_ln_sf(3, f64::INFINITY), f64::NEG_INFINITY);
        assert!(gamma_ln_sf(3, f64::NAN).is_nan());
        assert!(gamma_ln_sf(1_000_000, 3_000_000.0).is_finite());
        let mut last = 0.0;
        for i in 1..400 {
            let v = gamma_ln_sf(100, f64::from(i));
            assert!(v <= last + 1e-15, "not decreasing at {i}");
            last = v;
        }
    }
}
