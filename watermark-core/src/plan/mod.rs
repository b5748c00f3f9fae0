//! The power planner: from a pilot audit's pooled counts, how many scored tokens (and documents)
//! an audit needs before its exact binomial p-value reaches a target, with an interval from the
//! uncertainty of the pilot's green rate. A "not watermarked" audit is only "not detected at N
//! scored tokens"; the plan says how far from conclusive it was.
//!
//! # The statistics
//!
//! A pilot scored n tuples, g of them green, under green probability γ; its green rate is
//! r̂ = g / n. Let α be the target p-value.
//!
//! - **Assumption.** The tokens a larger audit scores are green with the pilot's probability r.
//!   The dedup rule scores each (window, token) tuple once, so a larger audit's new tokens are
//!   tuples the pilot had not seen; the plan assumes they are as green as those it saw. Scored
//!   tokens per document also fall as repeats accumulate, so `documents` is a lower estimate.
//! - **Critical count.** An audit of N scored tokens reaches α when its green count G is at
//!   least c(N), the smallest count with P(Bin(N, γ) ≥ c) ≤ α (exact tails, in log space).
//! - **Power.** π(N, r) = P(Bin(N, r) ≥ c(N)), exact.
//! - **Budget.** N(r) is the smallest N with π(N, r) ≥ β. At the default β = 1/2 it is the
//!   audit size whose *median* p-value reaches α (the p-value falls as G grows, so the median
//!   p is the p of the median G). The search starts from the saddle-point guess
//!   N·KL(r‖γ) + ½ ln(2πN r(1−r)) + ln(1−ρ) = ln(1/α) (ρ the tail's term ratio), doubles
//!   until π ≥ β and bisects; it is exact to the token below 1024 tokens and to 1 part in
//!   1024 above (an error that moves π by about 0.001). π is a sawtooth in N (c(N) moves in unit steps, each moving π by about one
//!   pmf term, ≤ 1/√(2πNr(1−r))), so N is the first crossing the bisection finds. N(r) is
//!   infinite for r ≤ γ and reported as unbounded above [`MAX_PLANNED_TOKENS`].
//! - **Interval.** A two-sided Clopper–Pearson interval [r₋, r₊] at confidence C on the rate
//!   maps to [N(r₊), N(r₋)]. N is non-increasing in r (Bin(N, r) grows stochastically with r),
//!   so this interval holds the budget of the true rate with probability at least C. It is
//!   unbounded when r₋ ≤ γ: the pilot cannot rule out that there is no excess at all.
//! - **Prediction.** For an audit of N fresh tokens, the log10 p it will report lies, with
//!   probability at least C, between the p-values of the green counts G₋ and G₊, where G₋ is the
//!   (1−C)/4 quantile of Bin(N, r₋′), G₊ the 1 − (1−C)/4 quantile of Bin(N, r₊′), and
//!   [r₋′, r₊′] is a Clopper–Pearson interval at confidence 1 − (1−C)/2: by the union bound
//!   over the rate's interval and the two quantiles, the three misses add up to at most 1 − C.
//!   The point prediction is the p of the median green count at r̂.
//!
//! Pooling the pilot into the larger audit (`more_scored_tokens`) looks at the data twice; a
//! strict auditor halves the target (Bonferroni over the two looks) or audits fresh documents.

#[cfg(test)]
mod simulation_tests;

use std::f64::consts::PI;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fpr::Fpr;
use crate::score::Score;
use crate::stats::{binomial_critical_count, binomial_ln_sf, binomial_log10_sf};

/// Default confidence of the plan's intervals.
pub const DEFAULT_PLAN_CONFIDENCE: f64 = 0.95;

/// Default probability that the planned audit reaches the target: 1/2, its median p-value.
pub const DEFAULT_PLAN_POWER: f64 = 0.5;

/// Budgets beyond this many scored tokens are reported as unbounded (about ten million queries:
/// no audit is run at that size, and the exact tails cost O(√N) there).
pub const MAX_PLANNED_TOKENS: u64 = 1_000_000_000;

/// Below this many tokens the budget is exact to the token; above, to 1 part in this.
const EXACT_BELOW: u64 = 1 << 10;

/// What the planner is asked: the p-value to reach, with what probability, and the confidence
/// of its intervals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlanOptions {
    /// The p-value the audit must reach (the verdict's false-positive rate, by default).
    pub target: Fpr,
    /// Probability that the planned audit reaches the target (1/2: its median p does).
    pub power: f64,
    /// Confidence of the intervals.
    pub confidence: f64,
}

impl PlanOptions {
    /// Options checked: `power` and `confidence` must lie in (0, 1).
    pub fn new(target: Fpr, power: f64, confidence: f64) -> Result<Self> {
        for (name, value) in [("power", power), ("confidence", confidence)] {
            if !(value > 0.0 && value < 1.0) {
                return Err(Error::InvalidParameter(format!(
                    "plan {name} {value} must lie in (0, 1)"
                )));
            }
        }
        Ok(PlanOptions {
            target,
            power,
            confidence,
        })
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            target: Fpr::DEFAULT,
            power: DEFAULT_PLAN_POWER,
            confidence: DEFAULT_PLAN_CONFIDENCE,
        }
    }
}

/// A pilot audit's pooled counts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pilot {
    /// Distinct tuples scored (n).
    pub scored: u64,
    /// Green among them (g).
    pub green: u64,
    /// The green probability of the test (γ).
    pub gamma: f64,
    /// Documents (answers, or texts read) the tuples came from.
    pub documents: u64,
}

impl Pilot {
    /// The pilot of an audit's pooled score over `documents` documents.
    pub fn new(score: &Score, documents: u64) -> Self {
        Pilot {
            scored: score.scored,
            green: score.green,
            gamma: score.gamma,
            documents,
        }
    }

    /// The observed green rate g / n (0 when nothing was scored).
    pub fn green_rate(&self) -> f64 {
        if self.scored == 0 {
            0.0
        } else {
            self.green as f64 / self.scored as f64
        }
    }
}

/// What the pilot says about the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    /// Nothing was scored: no rate, no plan.
    NothingScored,
    /// The pilot's own p-value already reaches the target.
    Reached,
    /// The green rate is at most γ: no budget reaches the target at the observed rate.
    NoExcess,
    /// An excess was observed: the budget at the observed rate is finite (or beyond the cap).
    Excess,
}

/// The log10 p an audit of a given size is expected to report.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Scored tokens of the audit predicted.
    pub scored_tokens: u64,
    /// log10 p of the median green count at the pilot's rate.
    pub log10_p_median: f64,
    /// [most significant, least significant] log10 p, holding the audit's with probability at
    /// least `confidence`.
    pub log10_p_interval: [f64; 2],
    /// Confidence of the interval.
    pub confidence: f64,
}

/// The plan: how many scored tokens (and documents) reach the target. Token counts are `None`
/// (JSON null) when no budget up to [`MAX_PLANNED_TOKENS`] does (none at all when the rate is
/// at most γ).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// What the pilot says about the target.
    pub status: PlanStatus,
    /// The p-value to reach.
    pub target: Fpr,
    /// Probability that an audit of `scored_tokens` reaches the target.
    pub power: f64,
    /// Confidence of the intervals.
    pub confidence: f64,
    /// The pilot's green rate g / n.
    pub green_rate: f64,
    /// Two-sided Clopper–Pearson interval on the green rate at `confidence`.
    pub green_rate_interval: [f64; 2],
    /// Scored tokens per document in the pilot.
    pub scored_tokens_per_document: Option<f64>,
    /// Scored tokens an audit needs at the observed rate (including the pilot's, if pooled).
    pub scored_tokens: Option<u64>,
    /// [at the rate's upper bound, at its lower bound]: the budget at `confidence`.
    pub scored_tokens_interval: [Option<u64>; 2],
    /// Scored tokens still to add to the pilot's.
    pub more_scored_tokens: Option<u64>,
    /// Documents (queries) for `scored_tokens` at the pilot's tokens per document.
    pub documents: Option<u64>,
    /// Documents for each end of `scored_tokens_interval`.
    pub documents_interval: [Option<u64>; 2],
    /// Documents still to add to the pilot's.
    pub more_documents: Option<u64>,
    /// The p-value an audit of `scored_tokens` fresh tokens is expected to report.
    pub prediction: Option<Prediction>,
    /// The plan in one sentence.
    pub summary: String,
}

/// Plans audits from one pilot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Planner {
    pilot: Pilot,
    options: PlanOptions,
    ln_target: f64,
}

impl Planner {
    /// A planner for `pilot`; refuses a γ outside (0, 1) or more green than scored.
    pub fn new(pilot: Pilot, options: PlanOptions) -> Result<Self> {
        if !(pilot.gamma > 0.0 && pilot.gamma < 1.0) {
            return Err(Error::InvalidParameter(format!(
                "green probability {} must lie in (0, 1)",
                pilot.gamma
            )));
        }
        if pilot.green > pilot.scored {
            return Err(Error::InvalidParameter(format!(
                "{} green out of {} scored: green cannot exceed scored",
                pilot.green, pilot.scored
            )));
        }
        // The fields are public: check them here too.
        let options = PlanOptions::new(options.target, options.power, options.confidence)?;
        Ok(Planner {
            pilot,
            options,
            ln_target: options.target.get().ln(),
        })
    }

    /// The smallest audit size (scored tokens) at which an audit whose tokens are green with
    /// probability `rate` reaches the target with probability at least the plan's power; `None`
    /// when none up to [`MAX_PLANNED_TOKENS`] does (always when `rate` ≤ γ).
    pub fn tokens_needed(&self, rate: f64) -> Option<u64> {
        if rate.is_nan() || rate <= self.pilot.gamma {
            return None;
        }
        let rate = rate.min(1.0);
        let mut critical = CriticalCounts::new(self.pilot.gamma, self.ln_target);
        let ln_power = self.options.power.ln();
        // Whether an audit of n tokens at `rate` reaches the target with the plan's power.
        let mut reaches = |n: u64| {
            let c = critical.at(n);
            c <= n && binomial_ln_sf(n, c, rate) >= ln_power
        };
        let guess = saddle_point_guess(rate, self.pilot.gamma, self.ln_target);
        let start = guess.clamp(1.0, MAX_PLANNED_TOKENS as f64) as u64;
        // Invariant: !reaches(lo) (an audit of 0 tokens never does), reaches(hi).
        let (mut lo, mut hi) = if reaches(start) {
            let (mut lo, mut hi) = (start / 2, start);
            while lo > 0 && reaches(lo) {
                hi = lo;
                lo /= 2;
            }
            (lo, hi)
        } else {
            let mut lo = start;
            loop {
                if lo >= MAX_PLANNED_TOKENS {
                    return None;
                }
                let hi = lo.saturating_mul(2).min(MAX_PLANNED_TOKENS);
                if reaches(hi) {
                    break (lo, hi);
                }
                lo = hi;
            }
        };
        while hi - lo > (hi / EXACT_BELOW).max(1) {
            let mid = lo + (hi - lo) / 2;
            if reaches(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// [N(r₊), N(r₋)]: the budgets at the ends of the rate's interval at the plan's confidence
    /// (see [`Planner::tokens_needed`]).
    pub fn tokens_interval(&self) -> [Option<u64>; 2] {
        let [low, high] = self.rate_interval(self.options.confidence);
        [self.tokens_needed(high), self.tokens_needed(low)]
    }

    /// The two-sided Clopper–Pearson interval on the pilot's green rate at `confidence`.
    pub fn rate_interval(&self, confidence: f64) -> [f64; 2] {
        clopper_pearson_at(self.pilot.green, self.pilot.scored, confidence)
    }

    /// The log10 p an audit of `scored_tokens` fresh tokens will report (see the module's
    /// doc); `None` when the pilot scored nothing or `scored_tokens` is over
    /// [`MAX_PLANNED_TOKENS`].
    pub fn predict(&self, scored_tokens: u64) -> Option<Prediction> {
        if self.pilot.scored == 0 || scored_tokens > MAX_PLANNED_TOKENS {
            return None;
        }
        let (n, gamma, miss) = (
            scored_tokens,
            self.pilot.gamma,
            1.0 - self.options.confidence,
        );
        let [low_rate, high_rate] = self.rate_interval(1.0 - miss / 2.0);
        let tail = miss / 4.0;
        // Largest G with P(X ≥ G) ≥ 1 − tail at the low rate; smallest G with P(X > G) ≤ tail
        // at the high rate; the median at the observed rate.
        let low_green = binomial_critical_count(n, low_rate, 1.0 - tail) - 1;
        let high_green = binomial_critical_count(n, high_rate, tail) - 1;
        let median = binomial_critical_count(n, self.pilot.green_rate(), 0.5) - 1;
        Some(Prediction {
            scored_tokens,
            log10_p_median: binomial_log10_sf(n, median, gamma),
            log10_p_interval: [
                binomial_log10_sf(n, high_green, gamma),
                binomial_log10_sf(n, low_green, gamma),
            ],
            confidence: self.options.confidence,
        })
    }

    /// The plan.
    pub fn plan(&self) -> Plan {
        let pilot = &self.pilot;
        let options = &self.options;
        let rate = pilot.green_rate();
        let interval = self.rate_interval(options.confidence);
        let status = if pilot.scored == 0 {
            PlanStatus::NothingScored
        } else if Score::new(pilot.scored, pilot.green, pilot.gamma)
            .is_significant(options.target.get())
        {
            PlanStatus::Reached
        } else if rate <= pilot.gamma {
            PlanStatus::NoExcess
        } else {
            PlanStatus::Excess
        };
        let planning = matches!(status, PlanStatus::NoExcess | PlanStatus::Excess);
        let per_document = (pilot.documents > 0 && pilot.scored > 0)
            .then(|| pilot.scored as f64 / pilot.documents as f64);
        let documents_for = |tokens: Option<u64>| Some(documents_for(tokens?, per_document?));
        let tokens = if planning {
            self.tokens_needed(rate)
        } else {
            None
        };
        let tokens_interval = if planning {
            self.tokens_interval()
        } else {
            [None, None]
        };
        let more = tokens.map(|t| t.saturating_sub(pilot.scored));
        let mut plan = Plan {
            status,
            target: options.target,
            power: options.power,
            confidence: options.confidence,
            green_rate: rate,
            green_rate_interval: interval,
            scored_tokens_per_document: per_document,
            scored_tokens: tokens,
            scored_tokens_interval: tokens_interval,
            more_scored_tokens: more,
            documents: documents_for(tokens),
            documents_interval: tokens_interval.map(documents_for),
            more_documents: documents_for(more),
            prediction: tokens.and_then(|t| self.predict(t)),
            summary: String::new(),
        };
        plan.summary = summary(&plan, pilot, options.target);
        plan
    }
}

/// Documents that hold `tokens` scored tokens at `per_document` each, rounded up.
fn documents_for(tokens: u64, per_document: f64) -> u64 {
    (tokens as f64 / per_document).ceil() as u64
}

/// The critical counts c(N) of one target: the smallest green count with
/// P(Bin(N, γ) ≥ c) ≤ target. A planner asks for many nearby N, so each search starts where
/// the last one's standardized count z = (c − Nγ) / √(Nγ(1−γ)) predicts, and gallops from there.
struct CriticalCounts {
    gamma: f64,
    ln_target: f64,
    z: f64,
}

impl CriticalCounts {
    /// Starts from the normal quantile's asymptote z² ≈ 2L − ln(2π · 2L), L = ln(1/target).
    fn new(gamma: f64, ln_target: f64) -> Self {
        let twice = -2.0 * ln_target;
        let z = (twice - (2.0 * PI * twice).ln()).max(0.0).sqrt();
        CriticalCounts {
            gamma,
            ln_target,
            z,
        }
    }

    /// c(n); n + 1 when even n green tokens do not reach the target.
    fn at(&mut self, n: u64) -> u64 {
        let (nf, gamma) = (n as f64, self.gamma);
        let sd = (nf * gamma * (1.0 - gamma)).sqrt();
        let guess = (nf * gamma + self.z * sd).round().clamp(0.0, nf + 1.0) as u64;
        let c = smallest_count_at_most(n, gamma, self.ln_target, guess);
        if sd > 0.0 && c <= n {
            self.z = (c as f64 - nf * gamma) / sd;
        }
        c
    }
}

/// The smallest c with ln P(Bin(n, p) ≥ c) ≤ `ln_level` (n + 1 if none), searched by galloping
/// from `guess` then bisecting; the same answer as `binomial_critical_count`, in
/// O(log |c − guess|) tails instead of O(log n).
fn smallest_count_at_most(n: u64, p: f64, ln_level: f64, guess: u64) -> u64 {
    let at_most = |c: u64| c > n || binomial_ln_sf(n, c, p) <= ln_level;
    let guess = guess.min(n.saturating_add(1));
    // Invariant once bracketed: !at_most(lo), at_most(hi).
    let (mut lo, mut hi);
    let mut step = 1;
    if at_most(guess) {
        hi = guess;
        loop {
            if hi == 0 {
                return 0;
            }
            let below = hi.saturating_sub(step);
            if !at_most(below) {
                lo = below;
                break;
            }
            hi = below;
            step *= 2;
        }
    } else {
        lo = guess;
        loop {
            let above = lo.saturating_add(step).min(n.saturating_add(1));
            if at_most(above) {
                hi = above;
                break;
            }
            lo = above;
            step *= 2;
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at_most(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Saddle-point guess of the N whose median green count at `rate` has p-value e^`ln_target`:
/// ln P(Bin(N, γ) ≥ Nr) ≈ −N KL(r‖γ) − ½ ln(2πN r(1−r)) − ln(1−ρ), ρ = (1−r)γ / (r(1−γ)),
/// solved for N by fixed-point iteration. Only a starting point: the search is exact.
fn saddle_point_guess(rate: f64, gamma: f64, ln_target: f64) -> f64 {
    if rate >= 1.0 {
        return ln_target / gamma.ln();
    }
    let kl = rate * (rate / gamma).ln() + (1.0 - rate) * ((1.0 - rate) / (1.0 - gamma)).ln();
    let rho = (1.0 - rate) * gamma / (rate * (1.0 - gamma));
    let mut n = -ln_target / kl;
    for _ in 0..8 {
        let prefactor = 0.5 * (2.0 * PI * n * rate * (1.0 - rate)).ln() + (1.0 - rho).ln();
        n = ((-ln_target - prefactor) / kl).max(1.0);
    }
    if n.is_finite() {
        n
    } else {
        1.0
    }
}

/// The two-sided Clopper–Pearson interval for `k` in `n` at `confidence`, as `[lower, upper]`.
fn clopper_pearson_at(k: u64, n: u64, confidence: f64) -> [f64; 2] {
    let (lower, upper) = crate::stats::clopper_pearson(k, n, 1.0 - confidence);
    [lower, upper]
}

/// `n` with thousands separators: 5708 → "5,708".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A budget for the summary: "42,137", or the reason there is none.
fn budget(tokens: Option<u64>) -> String {
    match tokens {
        Some(t) => grouped(t),
        None => format!("more than {}", grouped(MAX_PLANNED_TOKENS)),
    }
}

/// The plan in one sentence.
fn summary(plan: &Plan, pilot: &Pilot, target: Fpr) -> String {
    let target = format!("p ≤ {target}");
    let percent = format!("{}%", plan.confidence * 100.0);
    let [low, high] = plan.green_rate_interval;
    match plan.status {
        PlanStatus::NothingScored => "nothing was scored: there is no rate to plan from".into(),
        PlanStatus::Reached => format!(
            "the target {target} is already reached at {} scored tokens",
            grouped(pilot.scored)
        ),
        PlanStatus::NoExcess => {
            let at_upper = match plan.scored_tokens_interval[0] {
                Some(t) => format!("it would take at least {} scored tokens", grouped(t)),
                None if high <= pilot.gamma => "no budget would either".into(),
                None => format!("it would take {}", budget(None)),
            };
            format!(
                "no excess observed (green rate {:.4} ≤ γ {}): no finite budget reaches {target}; \
                 at the rate's {percent} upper bound {high:.4}, {at_upper}",
                plan.green_rate, pilot.gamma
            )
        }
        PlanStatus::Excess => {
            let upper = match plan.scored_tokens_interval[1] {
                Some(t) => grouped(t),
                None if low <= pilot.gamma => {
                    "unbounded, the pilot cannot rule out no excess".into()
                }
                None => budget(None),
            };
            let lower = plan.scored_tokens_interval[0].map_or_else(|| budget(None), grouped);
            let Some(tokens) = plan.scored_tokens else {
                return format!(
                    "at the observed green rate {:.4} (γ {}), no audit of up to {} scored tokens \
                     reaches {target} with probability {} ({percent} interval {lower} to {upper})",
                    plan.green_rate,
                    pilot.gamma,
                    grouped(MAX_PLANNED_TOKENS),
                    plan.power
                );
            };
            format!(
                "at the observed green rate {:.4} (γ {}, {percent} interval {low:.4} to {high:.4}), \
                 an audit of {} scored tokens reaches {target} with probability {} \
                 ({percent} interval {lower} to {upper})",
                plan.green_rate,
                pilot.gamma,
                grouped(tokens),
                plan.power
            )
        }
    }
}

#[cfg(test)]
mod tests;
