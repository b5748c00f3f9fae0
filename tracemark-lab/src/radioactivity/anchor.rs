//! Closed-model audits at the anchor's budget.
//!
//! Sander et al. score about 600k tokens per closed audit (≈ 10^4 queries to the suspect);
//! the main table's closed audits score about 6k. Sampling an n-gram student is cheap, so here
//! a student answers query after query (the prompts in turn, each query with its own seed)
//! until its unsupervised closed audit has scored a target number of distinct (window, token)
//! tuples, and the audit's cumulative curve shows how the evidence grows with the budget.

use watermark_core::{Audit, AuditOptions, AuditReport, CurvePoint, GreenList, WindowFilter};

use super::audits::new_audit;
use super::{Result, Sample};
use crate::ngram::{NgramModel, NgramSampler};

/// Queries each thread answers per round, between two looks at the audit.
const QUERIES_PER_THREAD: usize = 64;

/// How the student is queried.
#[derive(Clone, Debug)]
pub struct QueryPlan {
    /// Stop once the unsupervised audit has scored this many tuples...
    pub target_scored: u64,
    /// ...or after this many queries, whichever comes first.
    pub max_queries: usize,
    /// Most tokens per answer.
    pub max_tokens: usize,
    /// The student's sampling temperature.
    pub temperature: f64,
    /// Query `q` is drawn with seed `seed + q`.
    pub seed: u64,
    /// Threads drawing answers; the answers do not depend on it.
    pub threads: usize,
}

/// What answering did: `sink` saw `queries` answers of `sampled_tokens` tokens in all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queried {
    /// Answers drawn and handed on.
    pub queries: usize,
    /// Their tokens.
    pub sampled_tokens: u64,
}

/// Draws the student's answers to `prompts` in turn (query `q` answers prompt `q mod P` with
/// seed `plan.seed + q`) and hands them to `sink` in query order, until `sink` returns `true`
/// (enough) or `plan.max_queries` are drawn. Rounds of answers are drawn on `plan.threads`
/// threads, so a round may draw a few answers past the one that was enough; they are not
/// handed on.
pub fn query_student(
    student: &NgramModel,
    prompts: &[Vec<u32>],
    stop: &[u32],
    plan: &QueryPlan,
    mut sink: impl FnMut(&Sample) -> Result<bool>,
) -> Result<Queried> {
    let mut done = Queried {
        queries: 0,
        sampled_tokens: 0,
    };
    if prompts.is_empty() {
        return Ok(done);
    }
    let threads = plan.threads.max(1);
    let mut samplers = (0..threads)
        .map(|_| NgramSampler::new(student, plan.temperature, plan.seed))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    while done.queries < plan.max_queries {
        let first = done.queries;
        let n = (QUERIES_PER_THREAD * threads).min(plan.max_queries - first);
        let per_thread = n.div_ceil(threads);
        let rounds: Vec<Result<Vec<Sample>>> = std::thread::scope(|s| {
            let handles: Vec<_> = samplers
                .iter_mut()
                .enumerate()
                .map(|(t, sampler)| {
                    let start = first + (t * per_thread).min(n);
                    let end = first + ((t + 1) * per_thread).min(n);
                    s.spawn(move || {
                        (start..end)
                            .map(|q| {
                                sampler.reseed(plan.seed.wrapping_add(q as u64));
                                let p = &prompts[q % prompts.len()];
                                Ok(Sample {
                                    prompt_ids: p.clone(),
                                    response_ids: sampler.generate(p, plan.max_tokens, stop)?,
                                })
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for answers in rounds {
            for answer in answers? {
                done.queries += 1;
                done.sampled_tokens += answer.response_ids.len() as u64;
                if sink(&answer)? {
                    return Ok(done);
                }
            }
        }
    }
    Ok(done)
}

/// A student's closed audits at scale: unsupervised and supervised by our watermarked windows,
/// over the same answers.
#[derive(Clone, Debug)]
pub struct ScaledClosed {
    /// The queries asked and the tokens they drew.
    pub queried: Queried,
    /// The unsupervised audit (the one the budget is counted on).
    pub closed: AuditReport,
    /// Only tokens whose window occurs in the watermarked answers the student was served.
    pub supervised: AuditReport,
    /// The unsupervised audit's log10 p against scored tuples.
    pub curve: Vec<CurvePoint>,
    /// The answers, when asked to keep them (for the null checks).
    pub answers: Option<Vec<Sample>>,
}

/// The audits of a [`ScaledClosed`], fed one answer at a time: the loop that draws answers
/// (an n-gram student's threads, a neural student's batches) stays the caller's.
#[derive(Debug)]
pub struct ScaledAudit {
    closed: Audit,
    supervised: Audit,
    target_scored: u64,
    queried: Queried,
    kept: Option<Vec<Sample>>,
}

impl ScaledAudit {
    /// Empty audits under `green`, unsupervised and with `filter`, that are enough once the
    /// unsupervised one has scored `target_scored` tuples; keeps the answers when
    /// `keep_answers`.
    pub fn new(
        green: &GreenList,
        filter: WindowFilter,
        target_scored: u64,
        keep_answers: bool,
    ) -> Result<Self> {
        let options = AuditOptions::default();
        Ok(ScaledAudit {
            closed: new_audit(green, None, &options)?,
            supervised: new_audit(green, Some(filter), &options)?,
            target_scored,
            queried: Queried {
                queries: 0,
                sampled_tokens: 0,
            },
            kept: keep_answers.then(Vec::new),
        })
    }

    /// Audits one more answer; `true` once the target is reached.
    pub fn add(&mut self, answer: &Sample) -> Result<bool> {
        self.closed
            .add_output(&answer.prompt_ids, &answer.response_ids)?;
        self.supervised
            .add_output(&answer.prompt_ids, &answer.response_ids)?;
        self.queried.queries += 1;
        self.queried.sampled_tokens += answer.response_ids.len() as u64;
        if let Some(kept) = &mut self.kept {
            kept.push(answer.clone());
        }
        Ok(self.enough())
    }

    /// Whether the unsupervised audit has scored the target.
    pub fn enough(&self) -> bool {
        self.closed.score().scored >= self.target_scored
    }

    /// The reports.
    pub fn finish(self) -> ScaledClosed {
        ScaledClosed {
            queried: self.queried,
            closed: self.closed.report(),
            supervised: self.supervised.report(),
            curve: self.closed.curve(),
            answers: self.kept,
        }
    }
}

/// Queries `student` as `plan` says and audits its answers under `green`, unsupervised and
/// with `filter`; keeps the answers when `keep_answers`.
pub fn closed_at_scale(
    green: &GreenList,
    student: &NgramModel,
    prompts: &[Vec<u32>],
    stop: &[u32],
    filter: WindowFilter,
    plan: &QueryPlan,
    keep_answers: bool,
) -> Result<ScaledClosed> {
    let mut audit = ScaledAudit::new(green, filter, plan.target_scored, keep_answers)?;
    let queried = query_student(student, prompts, stop, plan, |a| audit.add(a))?;
    debug_assert_eq!(queried, audit.queried);
    Ok(audit.finish())
}

/// For each mark, the first curve point that has scored at least that many tuples (`None`
/// past the curve's end).
pub fn curve_at(curve: &[CurvePoint], marks: &[u64]) -> Vec<Option<CurvePoint>> {
    marks
        .iter()
        .map(|&m| curve.iter().find(|p| p.scored >= m).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ngram::{NgramConfig, NgramTrainer};
    use crate::radioactivity::audit_outputs;
    use watermark_core::{Audit, Scheme, SecretKey};

    fn student() -> NgramModel {
        let mut trainer = NgramTrainer::new(200, NgramConfig::default()).unwrap();
        let mut state = 7u64;
        for _ in 0..200 {
            let seq: Vec<u32> = (0..50)
                .map(|_| {
                    state = watermark_core::splitmix(state);
                    (state % 200) as u32
                })
                .collect();
            trainer.add_sequence(&seq).unwrap();
        }
        trainer.build()
    }

    fn plan(threads: usize) -> QueryPlan {
        QueryPlan {
            target_scored: 3_000,
            max_queries: 10_000,
            max_tokens: 40,
            temperature: 1.0,
            seed: 11,
            threads,
        }
    }

    #[test]
    fn answers_do_not_depend_on_threads_and_stop_at_the_budget() {
        let s = student();
        let prompts: Vec<Vec<u32>> = (0..7).map(|i| vec![i, i + 1, i + 2]).collect();
        let green =
            GreenList::new(&SecretKey::from_bytes([3; 32]), Scheme::default(), 200).unwrap();
        let filter = WindowFilter::new(&green);
        let one =
            closed_at_scale(&green, &s, &prompts, &[], filter.clone(), &plan(1), true).unwrap();
        let three = closed_at_scale(&green, &s, &prompts, &[], filter, &plan(3), true).unwrap();
        assert_eq!(one.answers, three.answers);
        assert_eq!(one.queried, three.queried);
        assert_eq!(one.curve, three.curve);
        // Stopped at the first answer that reached the budget, not before, not after.
        let scored = one.closed.header.score.scored;
        assert!(scored >= 3_000, "{scored}");
        let answers = one.answers.unwrap();
        assert_eq!(
            audit_outputs(&green, &answers, None, &AuditOptions::default())
                .unwrap()
                .header
                .score
                .log10_p_value,
            one.closed.header.score.log10_p_value
        );
        let mut audit = Audit::new(green.clone(), AuditOptions::default()).unwrap();
        for a in &answers[..answers.len() - 1] {
            audit.add_output(&a.prompt_ids, &a.response_ids).unwrap();
        }
        assert!(audit.score().scored < 3_000);
        // Query q answers prompt q mod P with its own seed: the same prompt twice differs.
        assert_eq!(answers[0].prompt_ids, answers[7].prompt_ids);
        assert_ne!(answers[0].response_ids, answers[7].response_ids);
        // The curve ends at the report and its marks are found in order.
        assert_eq!(one.curve.last().unwrap().scored, scored);
        let marks = curve_at(&one.curve, &[1, 1_000, scored, scored + 1]);
        assert!(marks[0].unwrap().scored >= 1 && marks[1].unwrap().scored >= 1_000);
        assert_eq!(marks[2].unwrap().scored, scored);
        assert!(marks[3].is_none());
    }

    #[test]
    fn the_query_cap_holds_when_the_budget_is_out_of_reach() {
        let s = student();
        let prompts = vec![vec![1u32, 2, 3]];
        let mut seen = 0;
        let plan = QueryPlan {
            target_scored: u64::MAX,
            max_queries: 150,
            ..plan(2)
        };
        let q = query_student(&s, &prompts, &[], &plan, |_| {
            seen += 1;
            Ok(false)
        })
        .unwrap();
        assert_eq!((q.queries, seen), (150, 150));
        assert!(q.sampled_tokens <= 150 * 40);
    }
}
