//! Family-wise corrections for testing M accounts at once, in natural-log space.
//!
//! Under the null every account's p-value is uniform, and the accounts' p-values are
//! independent given the text (their keys are independent), so the smallest of M is exactly
//! corrected by Šidák's 1 − (1 − p)^M; several are attributed by Holm's step-down with Šidák's
//! factors, which keeps the family-wise error rate at most α.

/// ln(1 − e^a) for a ≤ 0, accurate at both ends (Mächler's log1mexp).
fn ln_one_minus_exp(a: f64) -> f64 {
    if a > -std::f64::consts::LN_2 {
        (-a.exp_m1()).ln()
    } else {
        (-a.exp()).ln_1p()
    }
}

/// ln of the Šidák-corrected p-value 1 − (1 − p)^m from ln p, without leaving log space: exact
/// to rounding for p = 1e-1000 as for p = 0.5. m = 0 is treated as 1.
pub fn sidak_ln(ln_p: f64, m: u64) -> f64 {
    if ln_p.is_nan() {
        return f64::NAN;
    }
    let ln_p = ln_p.min(0.0);
    if ln_p == 0.0 {
        return 0.0;
    }
    let m = m.max(1) as f64;
    // ln(−ln(1 − p)): −ln(1 − p) = p (1 + p/2 + …), so below e^-40 it is ln p to 1e-17.
    let ln_neg_ln_q = if ln_p < -40.0 {
        ln_p
    } else {
        (-ln_one_minus_exp(ln_p)).ln()
    };
    // y = m ln(1 − p) < 0; the answer is ln(1 − e^y) = ln(−expm1(y)).
    let ln_neg_y = m.ln() + ln_neg_ln_q;
    if ln_neg_y < -40.0 {
        // −expm1(y) = −y (1 + y/2 + …): ln(−y) to 1e-17.
        return ln_neg_y;
    }
    ln_one_minus_exp(-ln_neg_y.exp()).min(0.0)
}

/// Holm's step-down with Šidák factors: the adjusted ln p-values, in the input's order. The
/// smallest is adjusted by 1 − (1 − p)^M, the next by M − 1, …, each at least the previous.
pub fn holm_sidak_ln(ln_ps: &[f64]) -> Vec<f64> {
    let m = ln_ps.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| ln_ps[a].total_cmp(&ln_ps[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = f64::NEG_INFINITY;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(sidak_ln(ln_ps[i], (m - rank) as u64));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(got: f64, want: f64, rel: f64) {
        assert!((got - want).abs() <= rel * want.abs(), "{got} vs {want}");
    }

    #[test]
    fn sidak_matches_the_direct_formula_where_it_is_representable() {
        for &p in &[0.5f64, 0.1, 1e-3, 1e-6, 1e-9, 1e-12] {
            for &m in &[1u64, 2, 10, 100, 10_000] {
                let direct = 1.0 - (1.0 - p).powf(m as f64);
                // 1 - (1-p)^m loses digits for tiny p; ln_1p/expm1 keep them.
                let stable = -((m as f64) * (-p).ln_1p()).exp_m1();
                near(sidak_ln(f64::ln(p), m).exp(), stable, 1e-12);
                near(stable, direct, 1e-3);
            }
        }
        // Far in the tail it is ln m + ln p.
        near(sidak_ln(-2000.0, 1000), -2000.0 + 1000f64.ln(), 1e-15);
        assert_eq!(sidak_ln(0.0, 5), 0.0);
        assert_eq!(sidak_ln(-0.01, 10_000), 0.0f64.min(sidak_ln(-0.01, 10_000)));
        assert!(sidak_ln(-0.01, 10_000) > -1e-30);
        assert_eq!(sidak_ln(-3.0, 1), -3.0);
    }

    #[test]
    fn holm_is_monotone_and_starts_with_sidak() {
        let ln_ps = [-1.0, -30.0, -5.0, -30.5];
        let adj = holm_sidak_ln(&ln_ps);
        near(adj[3], sidak_ln(-30.5, 4), 1e-15);
        near(adj[1], sidak_ln(-30.0, 3).max(adj[3]), 1e-15);
        assert!(adj[2] >= adj[1] && adj[0] >= adj[2]);
        assert!(adj.iter().zip(ln_ps).all(|(a, p)| *a >= p));
    }
}
