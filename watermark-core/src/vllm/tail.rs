//! The null tail of `dual_key_gumbel`'s statistic, exactly, and the approximation vLLM's
//! detector reports.
//!
//! Under the null each scored token adds `(1 - alpha) E_A + alpha E_B` with E_A, E_B independent
//! Exp(1), so over n tokens S = hi G_1 + lo G_2 with G_1, G_2 independent Gamma(n, 1) and
//! {hi, lo} = {1 - alpha, alpha}, hi >= lo. An Exp(1) scaled by hi is, in law, lo times a sum of
//! a Geometric(rho = lo / hi) number of Exp(1) (thinning), so hi G_1 = lo Gamma(n + K, 1) with
//! K ~ NegativeBinomial(n, rho) failures, and
//!
//! P(S >= s) = sum_k P(K = k) P(Gamma(2n + k, 1) >= s / lo),
//!
//! a series of positive terms, summed in log space until the rest is provably below 1e-17 of
//! the sum. vLLM instead matches a Gamma's mean and variance (shape n / v, scale v, with
//! v = (1 - alpha)^2 + alpha^2), which is exact only at alpha in {0, 1/2, 1}.

use crate::stats::{gamma_ln_sf, ln_gamma};

/// Relative size of the neglected rest of a series.
const REST: f64 = 1e-17;

/// ln(e^a + e^b), for a running sum of positive terms held as logs.
fn ln_add(a: f64, b: f64) -> f64 {
    let (big, small) = if a >= b { (a, b) } else { (b, a) };
    if small == f64::NEG_INFINITY {
        return big;
    }
    big + (small - big).exp().ln_1p()
}

/// ln P(S >= score) for S = (1 - alpha) G_1 + alpha G_2, G_1 and G_2 independent Gamma(n, 1):
/// the exact p-value of `dual_key_gumbel`'s sum over n scored tokens. Degenerate cases as
/// [`gamma_ln_sf`] (score <= 0 gives 0; n = 0 gives -inf for a positive score).
pub fn weighted_exp_ln_sf(n: u64, score: f64, alpha: f64) -> f64 {
    if score.is_nan() || alpha.is_nan() {
        return f64::NAN;
    }
    let (hi, lo) = if alpha <= 0.5 {
        (1.0 - alpha, alpha)
    } else {
        (alpha, 1.0 - alpha)
    };
    if score <= 0.0 {
        return 0.0;
    }
    if lo <= 0.0 || n == 0 {
        return gamma_ln_sf(n, score / hi);
    }
    let x = score / lo;
    if lo == hi {
        return gamma_ln_sf(2 * n, x);
    }
    let rho = lo / hi;
    let ln_fail = (-rho).ln_1p();
    let ln_x = x.ln();
    let nf = n as f64;
    // k = 0: weight rho^n, tail Q(2n, x).
    let mut shape = 2 * n;
    let mut ln_w = nf * rho.ln();
    let mut ln_q = gamma_ln_sf(shape, x);
    // ln P(Poisson(x) = shape), so that Q(shape + 1, x) = Q(shape, x) + that.
    let mut ln_pmf = shape as f64 * ln_x - x - ln_gamma(shape as f64 + 1.0);
    let mut total = ln_w + ln_q;
    // Past the negative binomial's mean by this much, stop whatever the bound says.
    let mean = nf * (1.0 - rho) / rho;
    let cap = (100.0 * (mean + 1000.0)).min(1e10) as u64;
    for k in 0..cap {
        let kf = k as f64;
        ln_w += ((nf + kf) / (kf + 1.0)).ln() + ln_fail;
        ln_q = ln_add(ln_q, ln_pmf);
        shape += 1;
        ln_pmf += ln_x - (shape as f64).ln();
        total = ln_add(total, ln_w + ln_q);
        // Weights fall by at most r from here on once r < 1, and every tail is at most 1, so
        // the rest is at most w r / (1 - r).
        let r = (nf + kf + 1.0) / (kf + 2.0) * (1.0 - rho);
        if r < 1.0 && ln_w + (r / (1.0 - r)).ln() < total + REST.ln() {
            break;
        }
    }
    total.min(0.0)
}

/// ln Q(a, x), the regularized upper incomplete gamma function P(Gamma(a, 1) >= x), for real
/// a > 0 and x >= 0: the power series of P below x = a + 1, else the continued fraction of Q
/// (evaluated by the modified Lentz method). About 1e-14 relative for moderate a.
pub fn ln_gamma_q(a: f64, x: f64) -> f64 {
    if a.is_nan() || x.is_nan() || a <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    let ln_front = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        let (mut term, mut sum, mut denominator) = (1.0 / a, 1.0 / a, a);
        for _ in 0..100_000_000u64 {
            denominator += 1.0;
            term *= x / denominator;
            sum += term;
            if term < sum * REST {
                break;
            }
        }
        let lower = (ln_front + sum.ln()).exp();
        return (-lower).ln_1p();
    }
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut fraction = d;
    for i in 1..100_000_000u64 {
        let i = i as f64;
        let an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let step = d * c;
        fraction *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    ln_front + fraction.ln()
}

/// The p-value vLLM 0.32's `DualKeyGumbelWatermarkDetector` reports for a sum `score` over
/// `scored` tokens: P(Gamma(n / v, 1) >= score / v) with v = (1 - alpha)^2 + alpha^2 (the shape
/// rounded at alpha in {0, 1/2, 1}, where it is exact); 1 when nothing was scored. In f64, so
/// 0 below about 1e-308, as vLLM's.
pub fn vllm_dual_key_p_value(scored: u64, score: f64, alpha: f64) -> f64 {
    if scored == 0 {
        return 1.0;
    }
    let variance = (1.0 - alpha).powi(2) + alpha.powi(2);
    let shape = scored as f64 / variance;
    let scaled = score / variance;
    if alpha == 0.0 || alpha == 0.5 || alpha == 1.0 {
        return gamma_ln_sf(shape.round() as u64, scaled).exp().min(1.0);
    }
    ln_gamma_q(shape, scaled).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::near;

    #[test]
    fn real_shapes_agree_with_the_integer_gamma_tail() {
        for (n, x) in [
            (1u64, 0.5),
            (3, 2.0),
            (3, 30.0),
            (50, 40.0),
            (50, 90.0),
            (400, 700.0),
        ] {
            let want = gamma_ln_sf(n, x);
            near(
                ln_gamma_q(n as f64, x),
                want,
                1e-12,
                &format!("Q({n}, {x})"),
            );
        }
        assert_eq!(ln_gamma_q(2.5, 0.0), 0.0);
        assert!(ln_gamma_q(0.0, 1.0).is_nan());
        // Non-integer shapes against mpmath's gammainc at 40 digits (ln Q).
        for (a, x, want) in [
            (148.5277, 160.3, -1.793_727_487_634_061_1),
            (0.5, 1.0, -1.849_605_509_933_248_2),
            (2.5, 0.3, -0.012_069_299_059_398_763),
            (1234.5, 1400.0, -12.707_030_120_536_79),
            (1234.5, 1000.0, -4.626_422_387_866_169e-13),
            (30.25, 200.0, -116.971_294_189_448_29),
        ] {
            near(ln_gamma_q(a, x), want, 1e-12, &format!("Q({a}, {x})"));
        }
    }

    /// One token: S = a E_1 + b E_2 has P(S >= s) = (a e^{-s/a} - b e^{-s/b}) / (a - b).
    #[test]
    fn one_token_matches_the_hypoexponential_closed_form() {
        for alpha in [0.1f64, 0.3, 0.7, 0.95] {
            let (a, b) = (1.0 - alpha, alpha);
            for s in [0.05f64, 0.7, 2.0, 9.0, 40.0] {
                let want = ((a * (-s / a).exp() - b * (-s / b).exp()) / (a - b)).ln();
                near(
                    weighted_exp_ln_sf(1, s, alpha),
                    want,
                    1e-12,
                    &format!("alpha {alpha} s {s}"),
                );
            }
        }
    }

    #[test]
    fn exact_cases_and_symmetry() {
        for n in [1u64, 7, 200] {
            let s = n as f64 * 1.3;
            near(
                weighted_exp_ln_sf(n, s, 0.5),
                gamma_ln_sf(2 * n, 2.0 * s),
                1e-14,
                "1/2",
            );
            near(weighted_exp_ln_sf(n, s, 0.0), gamma_ln_sf(n, s), 1e-14, "0");
            near(weighted_exp_ln_sf(n, s, 1.0), gamma_ln_sf(n, s), 1e-14, "1");
            near(
                weighted_exp_ln_sf(n, s, 0.2),
                weighted_exp_ln_sf(n, s, 0.8),
                1e-13,
                "swap",
            );
            // Continuous in alpha at 1/2.
            near(
                weighted_exp_ln_sf(n, s, 0.4999),
                weighted_exp_ln_sf(n, s, 0.5),
                1e-3,
                "near 1/2",
            );
        }
        assert_eq!(weighted_exp_ln_sf(5, 0.0, 0.1), 0.0);
        assert_eq!(weighted_exp_ln_sf(0, 1.0, 0.1), f64::NEG_INFINITY);
    }

    /// Deep tails stay finite and order as they must; vLLM's moment match is exact at 1/2 and
    /// close near the mean elsewhere, but not in the far tail.
    #[test]
    fn deep_tails_and_the_moment_match() {
        let deep = weighted_exp_ln_sf(100, 900.0, 0.1);
        // At least P(0.9 G_1 >= 900), at most P(0.9 G_1 + 0.9 G_2 >= 900).
        assert!(deep >= gamma_ln_sf(100, 1000.0), "{deep}");
        assert!(deep <= gamma_ln_sf(200, 1000.0), "{deep}");
        assert!(deep < -250.0 * std::f64::consts::LN_10, "{deep}");
        assert!(weighted_exp_ln_sf(100, 901.0, 0.1) < deep);
        let at_mean = weighted_exp_ln_sf(1000, 1000.0, 0.1).exp();
        let vllm = vllm_dual_key_p_value(1000, 1000.0, 0.1);
        assert!((at_mean - vllm).abs() < 0.01, "{at_mean} vs {vllm}");
        assert_eq!(vllm_dual_key_p_value(0, 3.0, 0.1), 1.0);
        near(
            vllm_dual_key_p_value(30, 40.0, 0.5).ln(),
            weighted_exp_ln_sf(30, 40.0, 0.5),
            1e-13,
            "vLLM exact at 1/2",
        );
    }

    /// The exact tail is calibrated: 20,000 simulated nulls of 5 tokens at alpha 0.1 fall below
    /// p = 0.05 as Binomial(20000, 0.05) does (mean 1000, sd 30.8); a 5-sigma band.
    #[test]
    fn simulated_nulls_are_calibrated() {
        use rand_chacha::rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let mut uniform = || ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let mut below = 0;
        for _ in 0..20_000 {
            let s: f64 = (0..5)
                .map(|_| 0.9 * -uniform().ln() + 0.1 * -uniform().ln())
                .sum();
            if weighted_exp_ln_sf(5, s, 0.1) < 0.05f64.ln() {
                below += 1;
            }
        }
        assert!((846..=1154).contains(&below), "{below} of 20000 below 0.05");
    }
}
