//! Exact detector statistics, in log space so that p = 1e-1000 stays reportable.
//!
//! Binomial tails are sums of pmf terms started at the tail's largest term. Each
//! `ln pmf` uses Loader's saddle-point form (`stirlerr` + `bd0`, as in R's `dbinom`),
//! which avoids the cancellation of `ln n!`-sized terms, so it stays accurate to about
//! 1e-13 relative at n = 1e9. Everything here is std-only and never panics.

#[cfg(feature = "experiments")]
mod experiments;
mod gamma;
mod interval;

use std::f64::consts::LN_10;

#[cfg(feature = "experiments")]
pub use experiments::{
    expected_green_fraction_lower_bound, ks_uniform, spike_entropy, spike_modulus,
};
pub use gamma::{gamma_ln_sf, gamma_log10_sf};
pub use interval::clopper_pearson;

/// ln(2 pi) / 2.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// ln Gamma(x) for x > 0: Stirling series for x >= 15, upward recurrence below it.
/// About 1e-15 relative away from the roots at 1 and 2 (there ~1e-15 absolute; exactly 0 at 1 and 2).
/// Returns +inf for x <= 0 (unsupported; the poles) and NaN for NaN.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x == f64::INFINITY {
        return if x.is_nan() { x } else { f64::INFINITY };
    }
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let mut y = x;
    let mut prod = 1.0;
    while y < 15.0 {
        prod *= y;
        y += 1.0;
    }
    (y - 0.5) * y.ln() - y + LN_SQRT_2PI + stirling_series(y) - prod.ln()
}

/// Stirling series ln Gamma(y) - [(y - 1/2) ln y - y + ln sqrt(2 pi)]; error < 1e-17 for y >= 15.
fn stirling_series(y: f64) -> f64 {
    const NUM: [f64; 7] = [1.0, -1.0, 1.0, -1.0, 1.0, -691.0, 1.0];
    const DEN: [f64; 7] = [12.0, 360.0, 1260.0, 1680.0, 1188.0, 360_360.0, 156.0];
    let r2 = 1.0 / (y * y);
    let terms = NUM.iter().zip(DEN).rev();
    terms.fold(0.0, |acc, (a, b)| acc * r2 + a / b) / y
}

/// Loader's Stirling error ln(k!) - [(k + 1/2) ln k - k + ln sqrt(2 pi)], for k >= 1.
fn stirlerr(k: f64) -> f64 {
    if k <= 15.0 {
        ln_gamma(k + 1.0) - (k + 0.5) * k.ln() + k - LN_SQRT_2PI
    } else {
        stirling_series(k) // equal, since ln Gamma(k + 1) = ln k + ln Gamma(k)
    }
}

/// Loader's deviance term x ln(x/m) + m - x for m = n p, without cancellation near x = m.
/// The rounding error of n p is recovered with an fma, since it matters when x ~ m ~ 1e9.
fn bd0(x: f64, n: f64, p: f64) -> f64 {
    let m = n * p;
    let d = (x - m) - n.mul_add(p, -m);
    if d.abs() < 0.1 * (x + m) {
        let mut v = d / (x + m);
        let mut s = d * v;
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let s1 = s + ej / f64::from(2 * j + 1);
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        return s;
    }
    let ratio = x / m;
    let l = if ratio.is_finite() && ratio > 0.0 {
        ratio.ln()
    } else {
        x.ln() - m.ln()
    };
    x * l + m - x
}

/// ln of a probability given it and its complement, each known to full relative accuracy.
fn ln_prob(a: f64, b: f64) -> f64 {
    if a > 0.5 {
        (-b).ln_1p()
    } else {
        a.ln()
    }
}

/// ln P(X = k), X ~ Bin(n, p), q = 1 - p, 0 < p < 1, k <= n (Loader 2000).
fn ln_pmf(n: u64, k: u64, p: f64, q: f64) -> f64 {
    let nf = n as f64;
    if k == 0 {
        return nf * ln_prob(q, p);
    }
    if k == n {
        return nf * ln_prob(p, q);
    }
    let (kf, rf) = (k as f64, (n - k) as f64);
    let lc = stirlerr(nf) - stirlerr(kf) - stirlerr(rf) - bd0(kf, nf, p) - bd0(rf, nf, q);
    // ln(k (n-k) / n) as one log: ln_1p(-k/n) would amplify the rounding of k/n when k ~ n.
    let lf = 2.0 * LN_SQRT_2PI + (kf * (rf / nf)).ln();
    lc - 0.5 * lf
}

/// ln sum_{k >= g} P(X = k) when every term decreases from g on (g > n p - q).
/// Terms are pmf ratios to P(X = g), re-anchored to `ln_pmf` every 1024 steps to bound
/// rounding drift, and added with Neumaier compensation (up to ~1e5 terms at n = 1e9).
fn ln_upper_sum(n: u64, g: u64, p: f64, q: f64) -> f64 {
    let l0 = ln_pmf(n, g, p, q);
    let (mut sum, mut comp, mut term, mut k) = (1.0_f64, 0.0_f64, 1.0_f64, g);
    while k < n {
        term *= ((n - k) as f64 * p) / ((k + 1) as f64 * q);
        k += 1;
        if (k - g).is_multiple_of(1024) {
            term = (ln_pmf(n, k, p, q) - l0).exp();
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

/// ln P(X >= g) for 1 <= g <= n, 0 < p < 1, with p and q = 1 - p both given (so a tiny q
/// keeps its accuracy).
fn ln_sf_pq(n: u64, g: u64, p: f64, q: f64) -> f64 {
    if g as f64 > n as f64 * p {
        ln_upper_sum(n, g, p, q)
    } else {
        // L = P(X <= g-1) = P(n - X >= n - g + 1), summed down from its largest term.
        // Here g <= mean, so P(X >= g) >= 1/2 (median) and ln_1p(-L) is accurate.
        let l = ln_upper_sum(n, n - g + 1, q, p).exp();
        (-l).ln_1p() + 0.0 // + 0.0 turns -0.0 into 0.0
    }
}

/// ln P(X >= g) for X ~ Binomial(n, p): exact tail in log space, so deep tails stay finite
/// (never -inf unless g > n) and are accurate to ~1e-13 relative even at n = 1e9.
/// Cost: O(sqrt(n p (1-p))) pmf-ratio terms at worst (g near the mean), O(1) in deep tails.
/// Degenerate: g == 0 gives 0; g > n gives -inf; p <= 0 (X = 0) gives -inf for g >= 1;
/// p >= 1 (X = n) gives 0 for g <= n; NaN p gives NaN.
pub fn binomial_ln_sf(n: u64, g: u64, p: f64) -> f64 {
    if g > n || (g > 0 && p <= 0.0) {
        f64::NEG_INFINITY
    } else if g == 0 || p >= 1.0 {
        0.0
    } else if p.is_nan() {
        f64::NAN
    } else {
        ln_sf_pq(n, g, p, 1.0 - p)
    }
}

/// log10 P(X >= g): the form reported to users (e.g. -1000 for p = 1e-1000).
/// Same degenerate cases as [`binomial_ln_sf`].
pub fn binomial_log10_sf(n: u64, g: u64, p: f64) -> f64 {
    binomial_ln_sf(n, g, p) / LN_10
}

/// Normal-approximation z = (g - n p) / sqrt(n p (1-p)), a human-readable effect size.
/// 0.0 when n == 0; with p outside (0, 1) the variance is 0, giving 0.0 if g == n p and ±inf otherwise.
pub fn z_score(n: u64, g: u64, p: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (nf, gf) = (n as f64, g as f64);
    let diff = gf - nf * p;
    let var = nf * p * (1.0 - p);
    if p.is_nan() {
        f64::NAN
    } else if var > 0.0 {
        diff / var.sqrt()
    } else if diff == 0.0 {
        0.0
    } else {
        diff.signum() * f64::INFINITY
    }
}

/// Smallest g with P(Bin(n, p) >= g) <= alpha (n + 1 if none): the green-count threshold for
/// a false-positive rate. Binary search on [`binomial_ln_sf`], so the answer is consistent with it.
/// alpha >= 1 gives 0; alpha <= 0 or NaN (and NaN p) gives n + 1.
pub fn binomial_critical_count(n: u64, p: f64, alpha: f64) -> u64 {
    if alpha.is_nan() || p.is_nan() || alpha <= 0.0 {
        return n.saturating_add(1);
    }
    if alpha >= 1.0 {
        return 0;
    }
    let ln_alpha = alpha.ln();
    // Invariant: sf(lo) > alpha, sf(hi) <= alpha (sf(0) = 1, sf(n + 1) = 0).
    let (mut lo, mut hi) = (0_u64, n.saturating_add(1));
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if binomial_ln_sf(n, mid, p) <= ln_alpha {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Bonferroni correction for m looks in log10 space: min(0, log10_p + log10(m)).
/// m == 0 is treated as 1; NaN stays NaN.
pub fn bonferroni_log10(log10_p: f64, m: u64) -> f64 {
    if log10_p.is_nan() {
        return f64::NAN;
    }
    (log10_p + (m.max(1) as f64).log10()).min(0.0)
}

/// p = 10^log10_p as f64, 0.0 when it underflows (callers report the log too); capped at 1.
pub fn p_from_log10(log10_p: f64) -> f64 {
    10f64.powf(log10_p.min(0.0))
}

/// Asserts |got - want| <= rel |want|: the tolerance every statistics test here states.
#[cfg(test)]
pub(crate) fn near(got: f64, want: f64, rel: f64, ctx: &str) {
    let ok = (got - want).abs() <= rel * want.abs().max(f64::MIN_POSITIVE);
    assert!(ok, "{ctx}: got {got}, want {want}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use statrs::distribution::{Binomial, DiscreteCDF};
    use std::f64::consts::PI;

    #[test]
    fn ln_gamma_matches_known_values_and_statrs() {
        near(ln_gamma(0.5), PI.sqrt().ln(), 1e-15, "0.5");
        near(ln_gamma(10.0), 362_880_f64.ln(), 1e-15, "10");
        near(ln_gamma(1e-10), 23.025_850_929_882_733, 1e-15, "1e-10"); // -ln x - Euler x
        assert_eq!([ln_gamma(1.0), ln_gamma(2.0)], [0.0, 0.0]);
        assert_eq!(ln_gamma(0.0), f64::INFINITY);
        for x in [
            0.1, 0.7, 3.3, 7.5, 14.9, 15.0, 15.1, 33.3, 171.5, 1e3, 1e9, 1e15,
        ] {
            let (got, want) = (ln_gamma(x), statrs::function::gamma::ln_gamma(x));
            near(got, want, 1e-14, &format!("ln_gamma({x})"));
        }
    }

    #[test]
    fn sf_matches_statrs_grid() {
        for n in [1_u64, 2, 7, 30, 100, 1000, 10_000, 100_000] {
            for p in [0.001, 0.05, 0.25, 0.5, 0.75, 0.99] {
                let b = Binomial::new(p, n).expect("valid binomial");
                let sd = (n as f64 * p * (1.0 - p)).sqrt();
                for z in [-4.0, -1.0, -0.2, 0.0, 0.5, 1.0, 3.0, 8.0, 20.0] {
                    let g = (n as f64 * p + z * sd).round().clamp(1.0, n as f64) as u64;
                    let want = b.sf(g - 1); // statrs sf(x) = P(X > x)
                    if want > 1e-300 {
                        // statrs' beta_reg itself errs up to ~1e-9 here (checked against mpmath).
                        let got = binomial_ln_sf(n, g, p).exp();
                        near(got, want, 5e-9, &format!("n={n} g={g} p={p}"));
                    }
                }
            }
        }
    }

    #[test]
    fn sf_matches_brute_force_small_n() {
        for n in 0..=60_u64 {
            let mut choose = vec![1_u64; n as usize + 1]; // exact C(n, k) in u64
            for k in 1..=n {
                choose[k as usize] = choose[k as usize - 1] * (n - k + 1) / k;
            }
            for p in [1e-3_f64, 0.1, 0.3, 0.5, 0.77, 0.999] {
                let pmf = |k: u64| {
                    choose[k as usize] as f64 * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32)
                };
                for g in 0..=n {
                    let want: f64 = (g..=n).map(pmf).sum();
                    if want > 1e-300 {
                        let got = binomial_ln_sf(n, g, p);
                        assert!((got - want.ln()).abs() < 1e-12, "n={n} g={g} p={p}");
                    }
                }
                assert_eq!(binomial_ln_sf(n, n + 1, p), f64::NEG_INFINITY);
            }
        }
    }

    #[test]
    fn sf_matches_mpmath_at_large_n() {
        // 40-digit mpmath sums of exact pmf terms (loggamma anchor, term-ratio recurrence).
        let cases: [(u64, u64, f64, f64); 11] = [
            (10_000_000, 8, 1e-06, -0.248_744_106_296_893_36),
            (100_000_000, 75_000_001, 0.25, -54_930_625.805_137_74),
            (1_000_000_000, 1000, 1e-06, -0.684_771_850_780_902_9),
            (1_000_000_000, 2265, 1e-06, -591.007_390_122_635_1),
            (1_000_000_000, 10_003_146, 0.01, -1.840_572_618_024_389),
            (1_000_000_000, 500_000_000, 0.5, -0.693_121_949_553_036),
            (1_000_000_000, 899_971_540, 0.9, -0.001_351_308_463_586_023),
            (1_000_000_000, 900_000_000, 0.9, -0.693_093_915_845_715_4),
            (1_000_000_000, 900_379_473, 0.9, -805.506_205_459_368),
            (1_000_000_000, 1, 1e-08, -4.540_095_810_038_969_4e-5),
            (
                1_000_000_000,
                1_000_000_000,
                0.999_999,
                -1_000.000_500_029_089,
            ),
        ];
        for (n, g, p, want) in cases {
            let got = binomial_ln_sf(n, g, p);
            near(got, want, 5e-13, &format!("n={n} g={g} p={p}"));
        }
    }

    #[test]
    fn deep_tails_are_finite_and_exact() {
        let all = binomial_ln_sf(10_000, 10_000, 0.25);
        near(all, 10_000.0 * 0.25_f64.ln(), 1e-9, "all green");
        for (n, g, p) in [
            (1_000_000, 500_000, 0.25),
            (1_000_000_000, 600_000_000, 0.5),
        ] {
            let (nf, x) = (n as f64, g as f64 / n as f64);
            let n_kl = nf * (x * (x / p).ln() + (1.0 - x) * ((1.0 - x) / (1.0 - p)).ln());
            let ln_p = binomial_ln_sf(n, g, p);
            assert!(ln_p.is_finite() && ln_p / LN_10 < -308.0 && ln_p <= -n_kl);
            // Saddle point: pmf(g) ~ e^{-n KL} / sqrt(2 pi n x (1-x)); tail ~ pmf(g) / (1 - rho).
            let rho = (1.0 - x) * p / (x * (1.0 - p));
            let approx = -n_kl - 0.5 * (2.0 * PI * nf * x * (1.0 - x)).ln() - (1.0 - rho).ln();
            assert!((ln_p - approx).abs() < 1e-5, "n={n}: {ln_p} vs {approx}");
            near(binomial_log10_sf(n, g, p), ln_p / LN_10, 1e-15, "log10");
        }
        // Independent log-sum-exp of statrs ln C(n, k) terms at n = 1e6.
        let (n, g, lp, lq) = (1_000_000_u64, 260_000_u64, 0.25_f64.ln(), 0.75_f64.ln());
        let term = |k: u64| {
            statrs::function::factorial::ln_binomial(n, k) + k as f64 * lp + (n - k) as f64 * lq
        };
        let sum: f64 = (g..g + 2000).map(|k| (term(k) - term(g)).exp()).sum();
        near(binomial_ln_sf(n, g, 0.25), term(g) + sum.ln(), 1e-10, "lse");
    }

    proptest! {
        #[test]
        fn sf_is_monotone_in_g(n in 1_u64..5000, p in 0.001_f64..0.999, f in 0.0_f64..1.0) {
            let g = (f * n as f64) as u64;
            let (a, b) = (binomial_ln_sf(n, g, p), binomial_ln_sf(n, g + 1, p));
            prop_assert!(b <= a && a <= 0.0 && b > f64::NEG_INFINITY, "{n} {g} {p}: {a} {b}");
        }

        #[test]
        fn critical_count_is_consistent(n in 0_u64..100_000, p in 0.01_f64..0.99, e in 1.0_f64..30.0) {
            let ln_alpha = -e * LN_10;
            let c = binomial_critical_count(n, p, ln_alpha.exp());
            prop_assert!(c <= n + 1 && binomial_ln_sf(n, c, p) <= ln_alpha);
            prop_assert!(c == 0 || binomial_ln_sf(n, c - 1, p) > ln_alpha);
        }
    }

    #[test]
    fn critical_count_and_degenerate_inputs() {
        // P(Bin(10, 0.5) >= 9) = 11/1024 > 0.01 >= P(X >= 10) = 1/1024.
        assert_eq!(binomial_critical_count(10, 0.5, 0.01), 10);
        assert_eq!(binomial_critical_count(10, 0.5, 0.0), 11);
        assert_eq!(binomial_critical_count(10, 0.5, 1.0), 0);
        assert_eq!(binomial_critical_count(u64::MAX, 0.5, f64::NAN), u64::MAX);
        assert_eq!(binomial_ln_sf(5, 0, 0.3), 0.0);
        assert_eq!(binomial_ln_sf(5, 5, 1.0), 0.0);
        assert_eq!(binomial_ln_sf(5, 6, 0.3), f64::NEG_INFINITY);
        assert_eq!(binomial_ln_sf(5, 1, 0.0), f64::NEG_INFINITY);
        assert!(binomial_ln_sf(5, 1, f64::NAN).is_nan());
        assert!(binomial_ln_sf(u64::MAX, u64::MAX, 0.5).is_finite());
        assert!(binomial_ln_sf(1_000_000_000, 2, 1e-300).is_finite());
        assert!(binomial_ln_sf(1_000_000_000, 1, 0.5).is_sign_positive()); // 0.0, not -0.0
    }

    #[test]
    fn small_helpers() {
        assert_eq!([z_score(0, 5, 0.5), z_score(10, 3, 0.0)], [0.0, 1.0 / 0.0]);
        near(z_score(100, 60, 0.5), 2.0, 1e-15, "z");
        assert_eq!(bonferroni_log10(-10.0, 1000), -7.0);
        assert_eq!(bonferroni_log10(-1.0, 1000), 0.0);
        assert_eq!(bonferroni_log10(-3.0, 0), -3.0);
        near(p_from_log10(-3.0), 1e-3, 1e-15, "10^-3");
        assert_eq!(p_from_log10(-1000.0), 0.0);
    }
}
