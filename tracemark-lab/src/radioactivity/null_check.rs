//! Whether p-values that should be uniform are: the calibration check of the audits run on
//! suspects that never saw the key's texts.

use serde::Serialize;
use watermark_core::stats;

/// Calibration of p-values that should be uniform (one per key): the KS test of uniformity and
/// the false-positive rate at two levels with exact (Clopper–Pearson) intervals.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NullCheck {
    /// Keys audited.
    pub keys: usize,
    /// Mean p-value (0.5 under the null for continuous p-values; a little above for exact
    /// binomial ones, which are conservative).
    pub mean_p: f64,
    /// Kolmogorov–Smirnov p-value of uniformity (two-sided: exact binomial p-values of small
    /// counts are discrete and conservative, which this also detects).
    pub ks_p: f64,
    /// One-sided KS p-value against an excess of small p-values (the false-positive side):
    /// P(D+ ≥ d) ≈ exp(−2 n d²), with D+ the largest excess of the empirical CDF over the
    /// uniform one.
    pub ks_excess_p: f64,
    /// Keys with p ≤ 0.05.
    pub flagged_05: u64,
    /// 95% interval of the false-positive rate at 0.05.
    pub ci_05: (f64, f64),
    /// Keys with p ≤ 0.01.
    pub flagged_01: u64,
    /// 95% interval of the false-positive rate at 0.01.
    pub ci_01: (f64, f64),
    /// The smallest log10 p over the keys.
    pub min_log10_p: f64,
}

impl NullCheck {
    /// Summarises one log10 p-value per key.
    pub fn from_log10_p(log10_p: &[f64]) -> Self {
        let p: Vec<f64> = log10_p.iter().map(|&l| stats::p_from_log10(l)).collect();
        let n = p.len() as u64;
        let flagged = |alpha: f64| p.iter().filter(|&&x| x <= alpha).count() as u64;
        let (flagged_05, flagged_01) = (flagged(0.05), flagged(0.01));
        NullCheck {
            keys: p.len(),
            mean_p: p.iter().sum::<f64>() / p.len().max(1) as f64,
            ks_p: stats::ks_uniform(&p).1,
            ks_excess_p: ks_excess(&p),
            flagged_05,
            ci_05: stats::clopper_pearson(flagged_05, n, 0.05),
            flagged_01,
            ci_01: stats::clopper_pearson(flagged_01, n, 0.05),
            min_log10_p: log10_p.iter().copied().fold(f64::INFINITY, f64::min),
        }
    }

    /// Whether the nominal rates lie in both intervals and the KS test does not reject at 1%.
    pub fn calibrated(&self) -> bool {
        self.ks_p > 0.01
            && (self.ci_05.0..=self.ci_05.1).contains(&0.05)
            && (self.ci_01.0..=self.ci_01.1).contains(&0.01)
    }

    /// Whether the p-values show more false positives than nominal: a rate interval entirely
    /// above its level, or the one-sided KS test rejecting at 1%.
    pub fn excess_false_positives(&self) -> bool {
        self.ci_05.0 > 0.05 || self.ci_01.0 > 0.01 || self.ks_excess_p < 0.01
    }

    /// One word for a table: `ok`, `conservative` (p-values too large, never a false alarm), or
    /// `FALSE+` (too many small p-values).
    pub fn verdict(&self) -> &'static str {
        if self.excess_false_positives() {
            "FALSE+"
        } else if self.calibrated() {
            "ok"
        } else {
            "conservative"
        }
    }
}

/// The null checks as a table, one row per audit (its name and one log10 p per key), with the
/// legend below; both radioactivity experiments print it.
pub fn null_table<S: AsRef<str>>(checks: &[(S, Vec<f64>)]) -> String {
    let width = checks
        .iter()
        .map(|(name, _)| name.as_ref().chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut out = format!(
        "{:<width$} {:>6} {:>5} {:>5} {:>20} {:>20} {:>8}  verdict\n",
        "audit", "mean p", "KS p", "KS+ p", "p≤0.05 [95% CI]", "p≤0.01 [95% CI]", "min lg p"
    );
    for (name, log10_p) in checks {
        let c = NullCheck::from_log10_p(log10_p);
        let rate = |k: u64, ci: (f64, f64)| format!("{}/{} [{:.2}, {:.2}]", k, c.keys, ci.0, ci.1);
        out += &format!(
            "{:<width$} {:>6.3} {:>5.3} {:>5.3} {:>20} {:>20} {:>8.2}  {}\n",
            name.as_ref(),
            c.mean_p,
            c.ks_p,
            c.ks_excess_p,
            rate(c.flagged_05, c.ci_05),
            rate(c.flagged_01, c.ci_01),
            c.min_log10_p,
            c.verdict()
        );
    }
    out += "KS p: two-sided test of uniformity; KS+ p: one-sided, against an excess of small p-values.\n\
            verdict: FALSE+ when a rate's interval lies above its level or KS+ p < 0.01; conservative when\n\
            only the two-sided test rejects (exact p-values of small counts run large: no false alarms).";
    out
}

fn ks_excess(p: &[f64]) -> f64 {
    if p.is_empty() {
        return 1.0;
    }
    let mut xs = p.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len() as f64;
    let d = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| (i + 1) as f64 / n - x.clamp(0.0, 1.0))
        .fold(0.0, f64::max);
    (-2.0 * n * d * d).exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_check_counts_and_bounds() {
        let l: Vec<f64> = (1..=20).map(|i| (i as f64 / 20.0).log10()).collect();
        let c = NullCheck::from_log10_p(&l);
        assert_eq!(c.keys, 20);
        assert_eq!(c.flagged_05, 1);
        assert_eq!(c.flagged_01, 0);
        assert!(c.calibrated());
        assert_eq!(c.verdict(), "ok");
        let bad = NullCheck::from_log10_p(&[-8.0; 20]);
        assert!(!bad.calibrated());
        assert_eq!(bad.verdict(), "FALSE+");
        let conservative = NullCheck::from_log10_p(&[-0.01; 20]);
        assert_eq!(conservative.verdict(), "conservative");
    }

    #[test]
    fn null_table_has_a_row_per_audit() {
        let ok: Vec<f64> = (1..=20).map(|i| (i as f64 / 20.0).log10()).collect();
        let table = null_table(&[("uniform", ok), ("flagged", vec![-8.0; 20])]);
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[0].starts_with("audit"));
        assert!(rows[1].starts_with("uniform") && rows[1].ends_with("ok"));
        assert!(rows[1].contains("1/20 [0.00, 0.25]"));
        assert!(rows[2].starts_with("flagged") && rows[2].ends_with("FALSE+"));
    }
}
