//! Attribution through a student: each listed account's pooled test over everything a suspect
//! wrote (or predicted while reading our texts), under the rules of the master audit.
//!
//! A student trained on one account's answers learns, for the windows it saw, a preference for
//! the tokens that account's uniforms favoured; the pooled score Σ −ln(1 − u) over the audit's
//! distinct scored tuples is Gamma(N, 1) for every account whose answers it did not learn.

use serde::Serialize;

use crate::audit::AuditOptions;
use crate::dedup::TupleSet;
use crate::error::{Error, Result};
use crate::green::GreenList;
use crate::scan::{check_tokens, classify, Rules};

use super::attribution::{scored_tuples, AccountAttribution};
use super::key::AccountKey;

/// What `tracemark audit --accounts` adds to the master audit's report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountAuditReport {
    /// Documents audited.
    pub documents: u64,
    /// The per-account pooled tests and the family-wise verdict.
    #[serde(flatten)]
    pub attribution: AccountAttribution,
}

/// A running per-account audit: add documents one at a time, read the report at any point.
/// It keeps its own tuple set, so it scores exactly the tuples the master audit scores.
#[derive(Clone, Debug)]
pub struct AccountAudit {
    green: GreenList,
    accounts: Vec<AccountKey>,
    options: AuditOptions,
    seen: TupleSet,
    sums: Vec<f64>,
    scored: u64,
    documents: u64,
}

impl AccountAudit {
    /// An empty audit of `accounts` under `green`'s key and scheme (no supervised filter).
    pub fn new(green: GreenList, accounts: Vec<AccountKey>, options: AuditOptions) -> Result<Self> {
        if accounts.is_empty() {
            return Err(Error::EmptyInput("no account to test".into()));
        }
        Ok(AccountAudit {
            sums: vec![0.0; accounts.len()],
            green,
            accounts,
            options,
            seen: TupleSet::default(),
            scored: 0,
            documents: 0,
        })
    }

    /// Closed model: one output of the suspect, `response` written after `prompt`.
    pub fn add_output(&mut self, prompt: &[u32], response: &[u32]) -> Result<()> {
        check_tokens(&self.green, &[prompt, response])?;
        self.add(prompt, response, response, false)
    }

    /// Open model, reading mode: `predictions[i]` is the suspect's top-1 prediction for the
    /// position of `text[i]`, scored under the window taken from our text.
    pub fn add_reading(&mut self, prompt: &[u32], text: &[u32], predictions: &[u32]) -> Result<()> {
        if predictions.len() != text.len() {
            return Err(Error::InvalidParameter(format!(
                "{} predictions for a text of {} tokens: reading mode needs one per position",
                predictions.len(),
                text.len()
            )));
        }
        check_tokens(&self.green, &[prompt, text, predictions])?;
        self.add(prompt, text, predictions, true)
    }

    fn add(&mut self, prompt: &[u32], text: &[u32], scored: &[u32], reading: bool) -> Result<()> {
        crate::audit::check_tuple_budget(&self.options, self.seen.len(), text.len())?;
        let rules = Rules {
            deduplicate: self.options.deduplicate,
            exclude_prompt: self.options.exclude_context,
            exclude_earlier: self.options.exclude_context && reading,
            filter: None,
            unaligned: None,
        };
        let statuses = classify(&self.green, prompt, text, scored, rules, &mut self.seen);
        let tuples = scored_tuples(&self.green, prompt, text, scored, &statuses);
        for (account, sum) in self.accounts.iter().zip(&mut self.sums) {
            account.add_scores(&tuples, sum);
        }
        self.scored += tuples.len() as u64;
        self.documents += 1;
        Ok(())
    }

    /// The report so far.
    pub fn report(&self) -> AccountAuditReport {
        AccountAuditReport {
            documents: self.documents,
            attribution: AccountAttribution::from_sums(
                &self.accounts,
                &self.sums,
                self.scored,
                self.options.fpr,
            ),
        }
    }
}
