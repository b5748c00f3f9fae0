//! The planner's arithmetic: known cases, brute force at small N, monotonicity, edge cases.

use super::*;

fn options(target: f64, power: f64, confidence: f64) -> PlanOptions {
    PlanOptions::new(Fpr::new(target).unwrap(), power, confidence).unwrap()
}

fn planner(scored: u64, green: u64, gamma: f64, target: f64) -> Planner {
    let pilot = Pilot {
        scored,
        green,
        gamma,
        documents: 10,
    };
    Planner::new(pilot, options(target, 0.5, 0.95)).unwrap()
}

/// P(Bin(n, p) ≥ c) by summing the pmf, with coefficients built up exactly in f64 (n ≤ 60).
fn brute_sf(n: u64, c: u64, p: f64) -> f64 {
    let mut choose = 1.0_f64;
    let mut total = 0.0;
    for k in 0..=n {
        if k > 0 {
            choose = choose * (n - k + 1) as f64 / k as f64;
        }
        if k >= c {
            total += choose * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32);
        }
    }
    total
}

/// Whether an audit of n tokens at `rate` reaches `target` with probability ≥ `power`, by brute
/// force.
fn brute_reaches(n: u64, gamma: f64, rate: f64, target: f64, power: f64) -> bool {
    let critical = (0..=n + 1).find(|&c| c > n || brute_sf(n, c, gamma) <= target);
    let c = critical.unwrap();
    c <= n && brute_sf(n, c, rate) >= power
}

#[test]
fn grouped_writes_thousands_separators() {
    assert_eq!(grouped(0), "0");
    assert_eq!(grouped(999), "999");
    assert_eq!(grouped(5708), "5,708");
    assert_eq!(grouped(1_000_000_000), "1,000,000,000");
}

#[test]
fn options_and_pilots_are_checked() {
    for bad in [0.0, 1.0, -0.1, f64::NAN] {
        assert!(PlanOptions::new(Fpr::DEFAULT, bad, 0.95).is_err());
        let err = PlanOptions::new(Fpr::DEFAULT, 0.5, bad).unwrap_err();
        assert!(err.to_string().contains("confidence"), "{err}");
    }
    let pilot = |gamma, green| Pilot {
        scored: 10,
        green,
        gamma,
        documents: 1,
    };
    assert!(Planner::new(pilot(0.0, 1), PlanOptions::default()).is_err());
    assert!(Planner::new(pilot(f64::NAN, 1), PlanOptions::default()).is_err());
    let unchecked = PlanOptions {
        power: 1.5,
        ..PlanOptions::default()
    };
    assert!(Planner::new(pilot(0.25, 1), unchecked).is_err());
    let err = Planner::new(pilot(0.25, 11), PlanOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("green cannot exceed scored"),
        "{err}"
    );
}

#[test]
fn an_all_green_suspect_needs_log_target_over_log_gamma_tokens() {
    // At rate 1 every token is green: N green tokens reach α exactly when γ^N ≤ α.
    // γ = 1/4, α = 1e-6: 4^-9 = 3.8e-6 > 1e-6 ≥ 4^-10 = 9.5e-7, so N = 10.
    assert_eq!(planner(100, 50, 0.25, 1e-6).tokens_needed(1.0), Some(10));
    // γ = 1/2, α = 1e-3: 2^-10 = 9.8e-4, so N = 10; α = 1e-9: 2^-30 = 9.3e-10, so N = 30.
    assert_eq!(planner(100, 60, 0.5, 1e-3).tokens_needed(1.0), Some(10));
    assert_eq!(planner(100, 60, 0.5, 1e-9).tokens_needed(1.0), Some(30));
}

#[test]
fn small_budgets_match_brute_force() {
    for (gamma, rate, target, power) in [
        (0.5, 0.9, 0.05, 0.5),
        (0.5, 0.8, 0.01, 0.5),
        (0.25, 0.7, 0.01, 0.5),
        (0.25, 0.8, 1e-4, 0.9),
        (0.3, 0.75, 1e-3, 0.2),
    ] {
        let pilot = Pilot {
            scored: 1,
            green: 0,
            gamma,
            documents: 1,
        };
        let p = Planner::new(pilot, options(target, power, 0.95)).unwrap();
        let n = p.tokens_needed(rate).expect("a finite budget");
        assert!(n <= 60, "{gamma} {rate}: {n}");
        let case = format!("γ {gamma} rate {rate} α {target} power {power}: N = {n}");
        assert!(brute_reaches(n, gamma, rate, target, power), "{case}");
        assert!(!brute_reaches(n - 1, gamma, rate, target, power), "{case}");
    }
}

#[test]
fn large_budgets_agree_with_the_normal_approximation() {
    // Median criterion: N ≈ (z_α σ₀ / ε)², z_α = Φ⁻¹(1 − 1e-6) = 4.753424, σ₀ = √(γ(1−γ)).
    let z = 4.753_424_308_822_899;
    let p = planner(1000, 255, 0.25, 1e-6);
    for excess in [0.02, 0.01, 0.005] {
        let normal = (z * (0.25_f64 * 0.75).sqrt() / excess).powi(2);
        let exact = p.tokens_needed(0.25 + excess).unwrap() as f64;
        // The binomial's skew moves the exact budget by a few percent at most here.
        assert!(
            (exact / normal - 1.0).abs() < 0.03,
            "{excess}: {exact} vs {normal}"
        );
    }
}

#[test]
fn the_budget_falls_with_the_rate_and_grows_with_the_demands() {
    let p = planner(1000, 270, 0.25, 1e-6);
    let rates = [0.2501, 0.251, 0.255, 0.26, 0.28, 0.3, 0.4, 0.6, 0.9, 1.0];
    let budgets: Vec<u64> = rates.iter().map(|&r| p.tokens_needed(r).unwrap()).collect();
    assert!(budgets.windows(2).all(|w| w[0] >= w[1]), "{budgets:?}");
    let pilot = Pilot {
        scored: 1000,
        green: 270,
        gamma: 0.25,
        documents: 10,
    };
    let at = |target: f64, power: f64| {
        let p = Planner::new(pilot, options(target, power, 0.95)).unwrap();
        p.tokens_needed(0.27).unwrap()
    };
    assert!(at(1e-3, 0.5) < at(1e-6, 0.5) && at(1e-6, 0.5) < at(1e-12, 0.5));
    assert!(at(1e-6, 0.1) < at(1e-6, 0.5) && at(1e-6, 0.5) < at(1e-6, 0.9));
    // No excess, or an excess so small the budget passes the cap: no budget.
    assert_eq!(p.tokens_needed(0.25), None);
    assert_eq!(p.tokens_needed(0.1), None);
    assert_eq!(p.tokens_needed(f64::NAN), None);
    assert_eq!(p.tokens_needed(0.25 + 1e-6), None);
}

#[test]
fn the_rate_interval_is_clopper_pearsons() {
    // Closed forms at the ends: no success in n gives [0, 1 − (α/2)^(1/n)], all n give
    // [(α/2)^(1/n), 1]; in between, the ends are where the exact tails equal α/2.
    for (n, confidence) in [(10u64, 0.95_f64), (1000, 0.99), (7, 0.9)] {
        let half_miss = (1.0 - confidence) / 2.0;
        let edge = half_miss.powf(1.0 / n as f64);
        let [lo, hi] = planner(n, 0, 0.25, 1e-6).rate_interval(confidence);
        assert!(lo == 0.0 && (hi - (1.0 - edge)).abs() < 1e-10, "0/{n}");
        let [lo, hi] = planner(n, n, 0.25, 1e-6).rate_interval(confidence);
        assert!((lo - edge).abs() < 1e-10 && hi == 1.0, "{n}/{n}");
    }
    let (k, n, confidence) = (270, 1000, 0.99);
    let [lo, hi] = planner(n, k, 0.25, 1e-6).rate_interval(confidence);
    let half_miss = ((1.0 - confidence) / 2.0_f64).ln();
    assert!((binomial_ln_sf(n, k, lo) - half_miss).abs() < 1e-8);
    assert!((binomial_ln_sf(n, n - k, 1.0 - hi) - half_miss).abs() < 1e-8);
    assert_eq!(planner(0, 0, 0.25, 1e-6).rate_interval(0.95), [0.0, 1.0]);
}

#[test]
fn an_observed_excess_gets_a_budget_an_interval_and_a_prediction() {
    // 10,000 tokens at 26% green under γ = 25%: z = 2.3, far from 1e-6; about 42k needed.
    let pilot = Pilot {
        scored: 10_000,
        green: 2600,
        gamma: 0.25,
        documents: 125,
    };
    let planner = Planner::new(pilot, PlanOptions::default()).unwrap();
    let plan = planner.plan();
    assert_eq!(plan.status, PlanStatus::Excess);
    let n = plan.scored_tokens.unwrap();
    assert!((40_000..46_000).contains(&n), "{n}");
    assert_eq!(plan.more_scored_tokens, Some(n - 10_000));
    assert_eq!(plan.scored_tokens_per_document, Some(80.0));
    assert_eq!(plan.documents, Some(n.div_ceil(80)));
    assert_eq!(plan.more_documents, Some((n - 10_000).div_ceil(80)));
    let [lo, hi] = plan.scored_tokens_interval;
    // The rate's interval (0.2515, 0.2687) holds γ out, so both ends are finite.
    assert!(lo.unwrap() < n && n < hi.unwrap(), "{lo:?} {n} {hi:?}");
    let [rate_lo, rate_hi] = plan.green_rate_interval;
    assert_eq!(hi, planner.tokens_needed(rate_lo));
    assert_eq!(lo, planner.tokens_needed(rate_hi));
    let prediction = plan.prediction.unwrap();
    assert_eq!(prediction.scored_tokens, n);
    let [best, worst] = prediction.log10_p_interval;
    assert!(best < prediction.log10_p_median && prediction.log10_p_median < worst);
    // The median audit of N tokens lands at the target (to about one green token's worth).
    assert!(
        (prediction.log10_p_median + 6.0).abs() < 0.1,
        "{prediction:?}"
    );
    assert!(plan.summary.contains(&grouped(n)), "{}", plan.summary);
    assert!(plan.summary.contains("p ≤ 1e-6"), "{}", plan.summary);
}

#[test]
fn edge_cases_say_what_they_are() {
    let status = |scored, green| planner(scored, green, 0.25, 1e-6).plan();
    let nothing = status(0, 0);
    assert_eq!(nothing.status, PlanStatus::NothingScored);
    assert_eq!(nothing.scored_tokens, None);
    assert_eq!(nothing.prediction, None);
    assert_eq!(nothing.scored_tokens_per_document, None);

    let reached = status(1000, 400);
    assert_eq!(reached.status, PlanStatus::Reached);
    assert!(
        reached.summary.contains("already reached at 1,000"),
        "{}",
        reached.summary
    );
    assert_eq!(reached.scored_tokens_interval, [None, None]);

    // Below γ: no budget at the observed rate, but the upper bound of the rate still has one.
    let below = status(10_000, 2450);
    assert_eq!(below.status, PlanStatus::NoExcess);
    assert_eq!(below.scored_tokens, None);
    assert_eq!(below.scored_tokens_interval[1], None);
    let at_upper = below.scored_tokens_interval[0].unwrap();
    assert!(at_upper > 100_000, "{at_upper}");
    assert!(
        below.summary.contains("no finite budget"),
        "{}",
        below.summary
    );
    assert!(below.summary.contains("at least"), "{}", below.summary);
    // Far below γ with many tokens: even the upper bound is below γ.
    let far_below = status(1_000_000, 200_000);
    assert_eq!(far_below.scored_tokens_interval, [None, None]);
    assert!(
        far_below.summary.contains("no budget would either"),
        "{}",
        far_below.summary
    );

    // A tiny pilot with an excess: a budget, but the rate's interval reaches below γ.
    let tiny = status(10, 4);
    assert_eq!(tiny.status, PlanStatus::Excess);
    assert!(tiny.scored_tokens.is_some() && tiny.scored_tokens_interval[1].is_none());
    assert!(tiny.summary.contains("unbounded"), "{}", tiny.summary);

    // An excess too small for any audit up to the cap.
    let faint = status(1_000_000, 250_020);
    assert_eq!(faint.status, PlanStatus::Excess);
    assert_eq!((faint.scored_tokens, faint.prediction), (None, None));
    assert!(
        faint.summary.contains("no audit of up to 1,000,000,000"),
        "{}",
        faint.summary
    );
    assert_eq!(
        planner(10, 4, 0.25, 1e-6).predict(MAX_PLANNED_TOKENS + 1),
        None
    );
}

#[test]
fn the_report_serializes_with_nulls_for_unbounded_budgets() {
    let plan = planner(10, 4, 0.25, 1e-6).plan();
    let json = serde_json::to_value(&plan).unwrap();
    assert_eq!(json["status"], "excess");
    assert_eq!(json["target"], 1e-6);
    assert!(json["scored_tokens_interval"][1].is_null());
    assert!(json["scored_tokens_interval"][0].is_u64());
    assert_eq!(json["prediction"]["confidence"], 0.95);
}

#[test]
fn galloping_critical_counts_match_the_bisection() {
    for (n, p, level) in [(1000_u64, 0.25, 1e-6), (50_000, 0.5, 1e-3), (7, 0.3, 0.2)] {
        let want = binomial_critical_count(n, p, level);
        for guess in [0, want.saturating_sub(3), want, want + 7, n, n + 1] {
            let got = smallest_count_at_most(n, p, level.ln(), guess);
            assert_eq!(got, want, "n {n} p {p} guess {guess}");
        }
    }
    // No count reaches the level: n + 1.
    assert_eq!(smallest_count_at_most(3, 0.5, 1e-6_f64.ln(), 2), 4);
}
