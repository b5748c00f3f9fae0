//! Statistics of experiments rather than of verdicts (feature `experiments`): how strongly a
//! model can be watermarked (spike entropy), and checks of a detector's calibration (the KS
//! test of uniform p-values, exact intervals for a false-positive rate).

use std::f64::consts::PI;

/// Spike entropy sum_k p_k / (1 + z p_k) (Kirchenbauer et al. 2023, Def. 4.1), which drives
/// how strongly a position can be watermarked. Empty input gives 0; inputs are not validated.
pub fn spike_entropy(probs: &[f64], modulus: f64) -> f64 {
    probs.iter().map(|&pk| pk / (1.0 + modulus * pk)).sum()
}

/// Theorem 4.2 modulus z = (1-gamma)(alpha-1) / (1 + (alpha-1) gamma), alpha = exp(delta)
/// (alpha - 1 via exp_m1 so small delta stays accurate).
pub fn spike_modulus(gamma: f64, delta: f64) -> f64 {
    let am1 = delta.exp_m1();
    (1.0 - gamma) * am1 / (1.0 + am1 * gamma)
}

/// Theorem 4.2 lower bound on the expected green fraction per token:
/// gamma alpha S / (1 + (alpha-1) gamma), with S the mean spike entropy (modulus
/// [`spike_modulus`]) over generated positions. delta = 0 gives gamma * S.
pub fn expected_green_fraction_lower_bound(gamma: f64, delta: f64, mean_spike_entropy: f64) -> f64 {
    let am1 = delta.exp_m1();
    gamma * (1.0 + am1) * mean_spike_entropy / (1.0 + am1 * gamma)
}

/// Kolmogorov distribution survival P(K > lambda), via whichever series converges fast.
fn kolmogorov_sf(lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return if lambda.is_nan() { lambda } else { 1.0 };
    }
    if lambda < 1.18 {
        // P(K <= l) = sqrt(2 pi)/l sum_j exp(-(2j-1)^2 pi^2 / (8 l^2)).
        let c = -PI * PI / (8.0 * lambda * lambda);
        let s: f64 = (1..=20)
            .map(|j| (c * f64::from(2 * j - 1).powi(2)).exp())
            .sum();
        return (1.0 - (2.0 * PI).sqrt() / lambda * s).clamp(0.0, 1.0);
    }
    let c = -2.0 * lambda * lambda;
    let mut s = 0.0;
    for j in 1..=100 {
        let t = (c * f64::from(j * j)).exp();
        s += if j % 2 == 1 { t } else { -t };
        if t < 1e-300 || t < 1e-17 * s {
            break;
        }
    }
    (2.0 * s).clamp(0.0, 1.0)
}

/// One-sample Kolmogorov–Smirnov test of uniformity on [0, 1] for null calibration: returns
/// (D, asymptotic p = P(K > sqrt(n) D)). Samples outside [0, 1] are scored with the clamped CDF.
/// Empty input gives (0, 1); any NaN sample gives (NaN, NaN).
pub fn ks_uniform(samples: &[f64]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 1.0);
    }
    if samples.iter().any(|x| x.is_nan()) {
        return (f64::NAN, f64::NAN);
    }
    let mut xs = samples.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    let mut d = 0.0_f64;
    for (i, &x) in xs.iter().enumerate() {
        let f = x.clamp(0.0, 1.0);
        d = d.max((i + 1) as f64 / n - f).max(f - i as f64 / n);
    }
    (d, kolmogorov_sf(n.sqrt() * d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::near;

    #[test]
    fn ks_uniform_behaves() {
        let grid: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
        let (d, p) = ks_uniform(&grid);
        assert!((d - 0.0005).abs() < 1e-12 && p > 0.999_999, "{d} {p}");
        let half: Vec<f64> = (0..1000).map(|i| i as f64 / 2000.0).collect();
        let (d, p) = ks_uniform(&half);
        assert!((d - 0.5).abs() < 1e-3 && p < 1e-100, "{d} {p}");
        let high: Vec<f64> = half.iter().map(|x| x + 0.5).collect(); // D- side
        assert!((ks_uniform(&high).0 - 0.5).abs() < 1e-3);
        for (lambda, p) in [(1.358, 0.05), (1.224, 0.10), (1.628, 0.01)] {
            assert!((kolmogorov_sf(lambda) - p).abs() < 3e-4, "{lambda}");
        }
        // The two series agree where they switch.
        assert!((kolmogorov_sf(1.18 - 1e-12) - kolmogorov_sf(1.18)).abs() < 1e-12);
        assert_eq!(ks_uniform(&[]), (0.0, 1.0));
        assert!(ks_uniform(&[0.5, f64::NAN]).0.is_nan());
    }

    #[test]
    fn spike_entropy_and_the_green_fraction_bound() {
        assert_eq!(spike_entropy(&[1.0], 0.0), 1.0);
        near(spike_entropy(&[0.25; 4], 4.0), 0.5, 1e-15, "spike");
        let (gamma, delta) = (0.25, 2.0_f64);
        let (a, z) = (delta.exp(), spike_modulus(gamma, delta));
        let denom = 1.0 + (a - 1.0) * gamma;
        near(z, (1.0 - gamma) * (a - 1.0) / denom, 1e-14, "modulus");
        assert_eq!(spike_modulus(gamma, 0.0), 0.0);
        // Many equally likely tokens: spike entropy near 1, so the bound exceeds gamma.
        let s = spike_entropy(&vec![1e-5; 100_000], z);
        let bound = expected_green_fraction_lower_bound(gamma, delta, s);
        near(bound, gamma * a * s / denom, 1e-14, "bound");
        assert!(bound > gamma);
        let no_bias = expected_green_fraction_lower_bound(gamma, 0.0, 0.8);
        near(no_bias, 0.2, 1e-15, "delta 0");
    }
}
