//! The planner against simulated audits of known excess: pilots and second audits drawn as
//! Bernoulli green tokens (fixed seeds), each claim checked at its stated probability with a
//! two-sided 99.9% binomial acceptance band, so a correct planner fails one check in a thousand
//! runs and a wrong one (budget, interval or prediction off) fails them.

use super::*;

/// γ of every simulated audit.
const GAMMA: f64 = 0.25;

/// SplitMix64: a small, fast generator with fixed seeds (debug builds draw ~10^7 tokens here).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Green tokens among `n`, each green with probability `rate`.
    fn green_count(&mut self, n: u64, rate: f64) -> u64 {
        let threshold = (rate * 18_446_744_073_709_551_616.0) as u64;
        (0..n).filter(|_| self.next() < threshold).count() as u64
    }
}

/// The two-sided 99.9% acceptance band of a Bin(trials, q) count: each tail holds at most
/// 0.0005 of it.
fn band(trials: u64, q: f64) -> std::ops::RangeInclusive<u64> {
    let tail = 0.0005;
    let high = binomial_critical_count(trials, q, tail) - 1;
    let low = trials + 1 - binomial_critical_count(trials, 1.0 - q, tail);
    low..=high
}

fn pilot(rng: &mut SplitMix, scored: u64, rate: f64) -> Pilot {
    Pilot {
        scored,
        green: rng.green_count(scored, rate),
        gamma: GAMMA,
        documents: scored / 50,
    }
}

#[test]
fn audits_of_the_planned_size_reach_the_target_with_the_planned_probability() {
    // One pilot of 10,000 tokens at 26% green; audits of the planned size at the pilot's rate
    // (the planner's assumption) reach p ≤ 1e-6 with the planned probability.
    let mut rng = SplitMix(12);
    let pilot = pilot(&mut rng, 10_000, 0.26);
    let rate = pilot.green_rate();
    const AUDITS: u64 = 200;
    for power in [0.5, 0.9] {
        let options = PlanOptions::new(Fpr::DEFAULT, power, 0.95).unwrap();
        let planner = Planner::new(pilot, options).unwrap();
        let plan = planner.plan();
        assert_eq!(plan.status, PlanStatus::Excess, "{plan:?}");
        let n = planner.tokens_needed(rate).unwrap();
        if power == 0.5 {
            assert_eq!(plan.scored_tokens, Some(n));
        }
        let reached = (0..AUDITS)
            .filter(|_| {
                let green = rng.green_count(n, rate);
                Score::new(n, green, GAMMA).is_significant(1e-6)
            })
            .count() as u64;
        let accept = band(AUDITS, power);
        assert!(
            accept.contains(&reached),
            "power {power}, N {n}: {reached}/{AUDITS} reached, want {accept:?}"
        );
    }
}

#[test]
fn the_budget_interval_holds_the_true_budget_at_its_confidence() {
    // Pilots of 5,000 tokens at a true rate of 27%: the true budget N(0.27) lies in each
    // pilot's 95% interval [N(r₊), N(r₋)] at least 95% of the time (Clopper–Pearson is
    // conservative, so more often).
    let mut rng = SplitMix(2026);
    const PILOTS: u64 = 200;
    let truth = Planner::new(pilot(&mut rng, 1, 0.27), PlanOptions::default()).unwrap();
    let true_budget = truth.tokens_needed(0.27).unwrap();
    let (mut covered, mut bounded) = (0, 0);
    for _ in 0..PILOTS {
        let planner = Planner::new(pilot(&mut rng, 5000, 0.27), PlanOptions::default()).unwrap();
        let [low, high] = planner.tokens_interval();
        bounded += u64::from(high.is_some());
        let above_low = low.is_some_and(|l| l <= true_budget);
        covered += u64::from(above_low && high.is_none_or(|h| true_budget <= h));
    }
    let accept = band(PILOTS, 0.95);
    assert!(
        covered >= *accept.start(),
        "{covered}/{PILOTS} covered, want ≥ {}",
        accept.start()
    );
    // Most intervals are finite at both ends: the coverage is not bought with unbounded ones.
    assert!(bounded >= PILOTS * 3 / 4, "{bounded}/{PILOTS} bounded");
}

#[test]
fn predictions_for_a_larger_audit_hold_its_p_value() {
    // Pilot of 10,000 tokens, then a fresh audit of 50,000, both at a true rate of 26%: the
    // second audit's log10 p lies in the pilot's 95% prediction interval at least 95% of the
    // time, and beats the median prediction about half the time.
    let mut rng = SplitMix(7);
    const PAIRS: u64 = 200;
    const SECOND: u64 = 50_000;
    let (mut inside, mut beat_median) = (0, 0);
    for _ in 0..PAIRS {
        let planner = Planner::new(pilot(&mut rng, 10_000, 0.26), PlanOptions::default()).unwrap();
        let prediction = planner.predict(SECOND).unwrap();
        let observed = Score::new(SECOND, rng.green_count(SECOND, 0.26), GAMMA).log10_p_value;
        let [best, worst] = prediction.log10_p_interval;
        inside += u64::from(best <= observed && observed <= worst);
        beat_median += u64::from(observed <= prediction.log10_p_median);
    }
    let accept = band(PAIRS, 0.95);
    assert!(
        inside >= *accept.start(),
        "{inside}/{PAIRS} inside, want ≥ {}",
        accept.start()
    );
    let halves = band(PAIRS, 0.5);
    assert!(
        halves.contains(&beat_median),
        "{beat_median}/{PAIRS} beat the median, want {halves:?}"
    );
}
