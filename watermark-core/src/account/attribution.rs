//! Attribution from text: each listed account's exact test on one document, corrected for the
//! number of accounts tested.
//!
//! The account's scored tokens are the master test's (same windows, same deduplication, same
//! prompt exclusion), so distinct tuples give independent uniforms under the null, and the
//! score Σ −ln(1 − u) over n of them is Gamma(n, 1): its upper tail is the p-value.

use serde::Serialize;

use crate::detect::{detect, DetectOptions};
use crate::error::{Error, Result};
use crate::fpr::Fpr;
use crate::green::GreenList;
use crate::scan::TokenStatus;
use crate::stats;

use super::correction::holm_sidak_ln;
use super::key::AccountKey;

/// How the accounts are tested.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountOptions {
    /// Family-wise false-positive rate at which an account is attributed.
    pub fpr: Fpr,
    /// Score each (seed, token) tuple once, as the master test does.
    pub deduplicate: bool,
}

impl Default for AccountOptions {
    fn default() -> Self {
        AccountOptions {
            fpr: Fpr::DEFAULT,
            deduplicate: true,
        }
    }
}

/// One account's test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountScore {
    /// The account id.
    pub account: String,
    /// Σ −ln(1 − u) over the scored tuples (Gamma(scored, 1) under the null).
    pub score: f64,
    /// log10 of its own exact p-value.
    pub log10_p_value: f64,
    /// log10 of the family-wise adjusted p-value (Holm–Šidák over the accounts tested).
    pub corrected_log10_p_value: f64,
    /// Whether the corrected p-value is at most the false-positive rate.
    pub attributed: bool,
}

/// The accounts' tests on one document or one audit.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountAttribution {
    /// Tuples scored (the master test's).
    pub scored: u64,
    /// Accounts tested (the correction's M).
    pub accounts_tested: u64,
    /// The family-wise false-positive rate.
    pub fpr: Fpr,
    /// The most likely account when it is attributed; `None` is "no account".
    pub best: Option<String>,
    /// Every account's test, most likely first.
    pub accounts: Vec<AccountScore>,
}

impl AccountAttribution {
    /// The attribution of `sums[i]` (account i's score over `scored` tuples).
    pub(crate) fn from_sums(accounts: &[AccountKey], sums: &[f64], scored: u64, fpr: Fpr) -> Self {
        let ln_ps: Vec<f64> = sums
            .iter()
            .map(|&s| {
                if scored == 0 {
                    0.0
                } else {
                    stats::gamma_ln_sf(scored, s).min(0.0)
                }
            })
            .collect();
        let adjusted = holm_sidak_ln(&ln_ps);
        let ln_fpr = fpr.get().ln();
        let mut scores: Vec<AccountScore> = accounts
            .iter()
            .zip(sums)
            .zip(ln_ps.iter().zip(&adjusted))
            .map(|((a, &score), (&ln_p, &adj))| AccountScore {
                account: a.id().to_string(),
                score,
                log10_p_value: ln_p / std::f64::consts::LN_10,
                corrected_log10_p_value: adj / std::f64::consts::LN_10,
                attributed: scored > 0 && adj <= ln_fpr,
            })
            .collect();
        scores.sort_by(|a, b| a.log10_p_value.total_cmp(&b.log10_p_value));
        AccountAttribution {
            scored,
            accounts_tested: accounts.len() as u64,
            fpr,
            best: scores
                .first()
                .filter(|s| s.attributed)
                .map(|s| s.account.clone()),
            accounts: scores,
        }
    }

    /// The accounts attributed (Holm: possibly several), most likely first.
    pub fn attributed(&self) -> impl Iterator<Item = &AccountScore> {
        self.accounts.iter().filter(|s| s.attributed)
    }
}

/// Tests every account in `accounts` on `tokens` (written after `prompt`): the most likely
/// account with its corrected p-value, or "no account" (`best: None`).
pub fn detect_accounts(
    green: &GreenList,
    accounts: &[AccountKey],
    prompt: &[u32],
    tokens: &[u32],
    options: &AccountOptions,
) -> Result<AccountAttribution> {
    if accounts.is_empty() {
        return Err(Error::EmptyInput("no account to test".into()));
    }
    let detect_options = DetectOptions {
        fpr: options.fpr,
        deduplicate: options.deduplicate,
        windowed: false,
        per_token: true,
    };
    let detection = detect(green, prompt, tokens, &detect_options)?;
    let statuses = detection.token_statuses.unwrap_or_default();
    let tuples = scored_tuples(green, prompt, tokens, tokens, &statuses);
    let sums: Vec<f64> = accounts
        .iter()
        .map(|a| {
            let mut sum = 0.0;
            a.add_scores(&tuples, &mut sum);
            sum
        })
        .collect();
    Ok(AccountAttribution::from_sums(
        accounts,
        &sums,
        tuples.len() as u64,
        options.fpr,
    ))
}

/// The account's (seed, token) tuple of every scored position (`scored[i]` under the window
/// of `text`). Distinct master tuples are distinct account tuples (the master seed is a
/// function of the window and the token), so the master's deduplication suffices.
pub(crate) fn scored_tuples(
    green: &GreenList,
    prompt: &[u32],
    text: &[u32],
    scored: &[u32],
    statuses: &[TokenStatus],
) -> Vec<(u64, u32)> {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, TokenStatus::Green | TokenStatus::Red))
        .map(|(i, _)| {
            (
                account_seed_at(green, prompt, text, prompt.len() + i),
                scored[i],
            )
        })
        .collect()
}

/// The account seed of position `p` of prompt ++ text (at least the context width): the
/// chain seed of the `context_width` tokens before it.
fn account_seed_at(green: &GreenList, prompt: &[u32], text: &[u32], p: usize) -> u64 {
    let need = green.scheme().context_width();
    if p - need >= prompt.len() {
        return green.context_chain_seed(&text[p - need - prompt.len()..p - prompt.len()]);
    }
    let at = |q: usize| {
        if q < prompt.len() {
            prompt[q]
        } else {
            text[q - prompt.len()]
        }
    };
    let window: Vec<u32> = (p - need..p).map(at).collect();
    green.context_chain_seed(&window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scheme, SecretKey};

    #[test]
    fn empty_lists_and_bad_tokens_are_errors() {
        let key = SecretKey::from_bytes([2; 32]);
        let green = GreenList::new(&key, Scheme::default(), 100).unwrap();
        let a = AccountKey::derive(&key, "a").unwrap();
        let opts = AccountOptions::default();
        assert!(detect_accounts(&green, &[], &[], &[1, 2, 3], &opts).is_err());
        assert!(detect_accounts(&green, std::slice::from_ref(&a), &[], &[1, 200], &opts).is_err());
        // Too short to score: nothing attributed, every p-value 1.
        let r = detect_accounts(&green, &[a], &[], &[1, 2], &opts).unwrap();
        assert_eq!(r.scored, 0);
        assert_eq!(r.best, None);
        assert_eq!(r.accounts[0].corrected_log10_p_value, 0.0);
    }
}
