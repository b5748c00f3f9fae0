//! The account options of `detect`, `audit` and `generate`: which API account a document, or a
//! suspect model, came from (`--accounts ACCOUNTS.txt`), and answers drawn for one account
//! (`--account ID`). The statistics live in `watermark_core::account`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;
use watermark_core::account::{
    detect_accounts, parse_account_list, AccountAttribution, AccountAudit, AccountAuditReport,
    AccountKey, AccountOptions,
};
use watermark_core::{
    detect, AuditOptions, DetectOptions, Detection, Error, Fpr, GreenList, Profile, TextTokenizer,
    SPEC_VERSION,
};

use super::detect::{read_documents, DetectArgs};
use super::tokenizer;
use crate::exit::ExitStatus;
use crate::input::{Content, Document, Input, IoWording};
use crate::numbers::{fixed, format_fpr};

/// The accounts of an accounts file (one id per line), derived from the profile's key.
pub fn read_accounts(path: &Path, green: &GreenList) -> Result<Vec<AccountKey>> {
    let name = path.display().to_string();
    let text = Input::file(path, IoWording::Plain)?
        .read_text()
        .with_context(|| format!("--accounts {name}"))?;
    let ids = parse_account_list(&text).with_context(|| format!("--accounts {name}"))?;
    ids.iter()
        .map(|id| AccountKey::for_green_list(green, id).map_err(Into::into))
        .collect()
}

/// `generate --account ID`: the green list whose samplers draw for that account.
pub fn for_account(green: GreenList, id: &str) -> Result<GreenList> {
    let account = AccountKey::for_green_list(&green, id).context("--account")?;
    Ok(green.with_account(account))
}

/// One document's master test and attribution.
#[derive(Debug)]
struct Attributed {
    source: String,
    id: Option<Value>,
    detection: Detection,
    attribution: AccountAttribution,
}

/// One `detect --accounts --json` line.
#[derive(Debug, Serialize)]
struct AttributedLine<'a> {
    #[serde(flatten)]
    detection: &'a Detection,
    accounts: &'a AccountAttribution,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a Value>,
}

/// `detect --accounts ACCOUNTS.txt`: the master verdict and the most likely account of each
/// document, corrected for the number of accounts tested.
pub fn detect_documents(
    args: &DetectArgs,
    accounts_file: &Path,
    out: &mut impl Write,
) -> Result<ExitStatus> {
    let session = Profile::open(&args.profile)?.with_tokenizer_file(args.tokenizer.as_deref());
    let green = session.green_list();
    let fpr = Fpr::new(args.fpr.unwrap_or(session.fpr().get())).context("--fpr")?;
    let accounts = read_accounts(accounts_file, green)?;
    let documents = read_documents(args)?;
    let tokenizer = if documents.iter().any(Document::needs_tokenizer) {
        Some(tokenizer(&session)?)
    } else {
        None
    };
    let options = AccountOptions {
        fpr,
        deduplicate: true,
    };
    let results = documents
        .into_iter()
        .map(|doc| attribute(doc, green, &accounts, tokenizer, &options))
        .collect::<Result<Vec<_>>>()?;
    if args.json {
        for r in &results {
            let line = AttributedLine {
                detection: &r.detection,
                accounts: &r.attribution,
                source: &r.source,
                id: r.id.as_ref(),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        }
    } else {
        print_table(&results, out)?;
        let flagged = results
            .iter()
            .filter(|r| r.detection.header.watermarked)
            .count();
        let named = results
            .iter()
            .filter(|r| r.attribution.best.is_some())
            .count();
        writeln!(
            out,
            "{} documents, {flagged} watermarked, {named} attributed to an account; {} accounts \
             tested at FPR {} (key {}, spec {SPEC_VERSION})",
            results.len(),
            accounts.len(),
            format_fpr(fpr.get()),
            green.key_fingerprint(),
        )?;
    }
    let any_flagged = results.iter().any(|r| r.detection.header.watermarked);
    let unscored = results.iter().any(|r| r.detection.header.score.scored == 0);
    Ok(ExitStatus::verdict(
        args.fail_if_watermarked,
        any_flagged,
        unscored,
    ))
}

fn attribute(
    doc: Document,
    green: &GreenList,
    accounts: &[AccountKey],
    tokenizer: Option<&TextTokenizer>,
    options: &AccountOptions,
) -> Result<Attributed> {
    let source = doc.source;
    let encode = |content: Content| -> Result<Vec<u32>> {
        match content {
            Content::Tokens(ids) => Ok(ids),
            Content::Text(text) => Ok(tokenizer.ok_or(Error::NoTokenizer)?.encode(&text)?),
        }
    };
    let prompt = match doc.prompt {
        Some(Content::Text(p)) if p.trim().is_empty() => Vec::new(),
        Some(p) => encode(p).with_context(|| format!("{source}: prompt"))?,
        None => Vec::new(),
    };
    let ids = encode(doc.body).with_context(|| source.clone())?;
    let detect_options = DetectOptions {
        fpr: options.fpr,
        ..DetectOptions::default()
    };
    let detection =
        detect(green, &prompt, &ids, &detect_options).with_context(|| source.clone())?;
    let attribution =
        detect_accounts(green, accounts, &prompt, &ids, options).with_context(|| source.clone())?;
    Ok(Attributed {
        source,
        id: doc.id,
        detection,
        attribution,
    })
}

fn print_table(results: &[Attributed], out: &mut impl Write) -> Result<()> {
    let header = [
        "source",
        "tokens",
        "scored",
        "log10 p",
        "verdict",
        "account",
        "corrected log10 p",
    ];
    let rows: Vec<[String; 7]> = results
        .iter()
        .map(|r| {
            let d = &r.detection.header;
            let verdict = if d.score.scored == 0 {
                "nothing to score"
            } else if d.watermarked {
                "WATERMARKED"
            } else {
                "not watermarked"
            };
            let top = r.attribution.accounts.first();
            [
                r.source.clone(),
                d.tokens.to_string(),
                d.score.scored.to_string(),
                fixed(d.score.log10_p_value),
                verdict.to_string(),
                r.attribution
                    .best
                    .clone()
                    .unwrap_or_else(|| "no account".to_string()),
                top.map_or("-".to_string(), |s| fixed(s.corrected_log10_p_value)),
            ]
        })
        .collect();
    let widths = crate::numbers::column_widths(&header, &rows);
    let left = |column: usize| matches!(column, 0 | 4 | 5);
    let line = |cells: &[&str]| crate::numbers::table_line(cells.iter().copied(), &widths, left);
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

/// `audit --accounts ACCOUNTS.txt`: the per-account pooled audit beside the master one.
#[derive(Debug)]
pub struct AuditAccounts {
    audit: AccountAudit,
}

impl AuditAccounts {
    /// The accounts of `path`, audited under the master audit's rules.
    pub fn open(path: &Path, green: &GreenList, options: &AuditOptions) -> Result<Self> {
        let accounts = read_accounts(path, green)?;
        Ok(AuditAccounts {
            audit: AccountAudit::new(green.clone(), accounts, options.clone())?,
        })
    }

    /// Closed model: one output of the suspect.
    pub fn add_output(&mut self, prompt: &[u32], response: &[u32]) -> Result<()> {
        Ok(self.audit.add_output(prompt, response)?)
    }

    /// Reading mode: the suspect's predictions over one of our texts.
    pub fn add_reading(&mut self, prompt: &[u32], text: &[u32], predictions: &[u32]) -> Result<()> {
        Ok(self.audit.add_reading(prompt, text, predictions)?)
    }

    /// The report, for `--json`.
    pub fn report(&self) -> AccountAuditReport {
        self.audit.report()
    }

    /// The accounts attributed, then the closest of the rest, as lines under the master report.
    pub fn print(&self, out: &mut impl Write) -> Result<()> {
        let report = self.audit.report();
        let a = &report.attribution;
        let named: Vec<_> = a.attributed().collect();
        writeln!(
            out,
            "accounts: {} tested over {} scored tokens, family-wise FPR {}",
            a.accounts_tested,
            a.scored,
            format_fpr(a.fpr.get())
        )?;
        if named.is_empty() {
            writeln!(out, "  no account")?;
        }
        for s in &named {
            writeln!(
                out,
                "  {}  log10 p {}  corrected {}  ATTRIBUTED",
                s.account,
                fixed(s.log10_p_value),
                fixed(s.corrected_log10_p_value)
            )?;
        }
        if let Some(s) = a.accounts.iter().find(|s| !s.attributed) {
            writeln!(
                out,
                "  closest other: {}  log10 p {}  corrected {}",
                s.account,
                fixed(s.log10_p_value),
                fixed(s.corrected_log10_p_value)
            )?;
        }
        Ok(())
    }
}
