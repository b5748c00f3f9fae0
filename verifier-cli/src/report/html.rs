//! `report.html`: the evidence record as one self-contained page (inline CSS and SVG, no
//! script, no external asset). Rendered from the record alone, so that `verify-report` can
//! re-render it and compare. Everything that comes from an input is escaped: the audited
//! party writes the documents.

use std::fmt::Write;

use watermark_core::evidence::{
    AccountsFinding, AuditFinding, DocumentFinding, Evidence, Findings, Statistics,
};

use super::words::{chance_sentence, odds, rule_sentence, Style};
use crate::numbers::{fixed, format_fpr};

/// Text made safe for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;\
padding:0 1rem;color:#222;line-height:1.45}h1{font-size:1.6rem}h2{margin-top:2rem;\
border-bottom:1px solid #ccc}.verdict{padding:1rem 1.2rem;border-radius:6px;font-size:1.15rem}\
.verdict.yes{background:#fdecea;border:2px solid #c0392b}.verdict.no{background:#eef4fb;\
border:2px solid #1f5fa8}table{border-collapse:collapse}td,th{padding:.2rem .6rem;\
border-bottom:1px solid #eee;text-align:left;vertical-align:top}td.n{text-align:right;\
font-variant-numeric:tabular-nums}.doc{margin:1.5rem 0;padding:.8rem;border:1px solid #ddd;\
border-radius:6px}.tokens{font-family:ui-monospace,monospace;white-space:pre-wrap;\
line-height:1.9;word-break:break-word}.tok{padding:1px 0;border-radius:2px}.g{background:#b7e4b7}\
.r{background:#f5c2c2}.u{background:#e6e6e6;color:#666}.window{outline:2px solid #1f5fa8;\
outline-offset:1px}.legend span{margin-right:1rem}code,.hash{font-family:ui-monospace,monospace;\
font-size:.85rem;word-break:break-all}.small{color:#555;font-size:.9rem}\
.chart svg{width:100%;height:auto}";

/// The page.
pub fn render(evidence: &Evidence) -> anyhow::Result<String> {
    let mut page = String::new();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>tracemark evidence report</title><style>{STYLE}</style></head><body>\n"
    );
    let _ = writeln!(
        page,
        "<h1>Watermark evidence report</h1><p class=\"small\">Key {} · {} · made {} with \
         tracemark {}</p>",
        escape(&evidence.profile.key_fingerprint),
        escape(&evidence.spec),
        escape(&evidence.created),
        escape(&evidence.tracemark_version)
    );
    match &evidence.findings {
        Findings::Detect { documents } => detect_section(&mut page, documents),
        Findings::Audit(audit) => audit_section(&mut page, audit)?,
    }
    provenance_section(&mut page, evidence);
    page.push_str("</body></html>\n");
    Ok(page)
}

/// What scores this high only by chance, for documents and for audited models.
const DOCUMENT_SUBJECT: &str = "a document not written with this key";
const MODEL_SUBJECT: &str = "a model never trained on text watermarked with this key";

fn verdict_box(page: &mut String, watermarked: bool, headline: &str, stats: &Statistics) {
    let _ = writeln!(
        page,
        "<div class=\"verdict {}\" id=\"verdict\"><strong>{}</strong><br>{} {}</div>",
        if watermarked { "yes" } else { "no" },
        escape(headline),
        chance_sentence(stats.log10_p_value, MODEL_SUBJECT, Style::Html),
        rule_sentence(stats.fpr, "the suspect model", Style::Html)
    );
}

fn statistics_table(page: &mut String, stats: &Statistics) {
    let rows = [
        ("tokens examined", stats.tokens.to_string(), "prompts excluded"),
        (
            "tokens scored",
            stats.scored.to_string(),
            "distinct (context, token) pairs; repeats and tokens without enough context are not counted",
        ),
        (
            "green tokens",
            stats.green.to_string(),
            "scored tokens in the key's green list",
        ),
        (
            "green fraction",
            stats.green_fraction.map_or("–".into(), |f| format!("{f:.3}")),
            "green tokens / tokens scored",
        ),
        (
            "expected without the key",
            format!("{:.3}", stats.gamma),
            "the fraction of green tokens in text not written with the key",
        ),
        (
            "z-score",
            stats.z_score.map_or("–".into(), fixed),
            "standard deviations above the expected count",
        ),
        (
            "log10 p",
            fixed(stats.log10_p_value),
            "exact binomial tail; −24 means a chance of 1 in 10<sup>24</sup>",
        ),
        ("false-positive rate", format_fpr(stats.fpr), "the threshold of the verdict"),
    ];
    page.push_str("<table class=\"stats\">");
    for (name, value, note) in rows {
        let _ = write!(
            page,
            "<tr><th>{name}</th><td class=\"n\">{}</td><td class=\"small\">{note}</td></tr>",
            escape(&value)
        );
    }
    page.push_str("</table>\n");
}

fn detect_section(page: &mut String, documents: &[DocumentFinding]) {
    let flagged = documents
        .iter()
        .filter(|d| d.verdict.starts_with("watermarked"))
        .count();
    let headline = format!(
        "{flagged} of {} document{} judged watermarked",
        documents.len(),
        if documents.len() == 1 { "" } else { "s" }
    );
    let _ = writeln!(
        page,
        "<div class=\"verdict {}\" id=\"verdict\"><strong>{}</strong></div>",
        if flagged > 0 { "yes" } else { "no" },
        escape(&headline)
    );
    page.push_str(
        "<p class=\"legend\">Each token of each document is coloured: <span class=\"tok g\">green</span> \
         in the key's green list, <span class=\"tok r\">red</span> not in it, <span class=\"tok u\">grey</span> \
         not scored (hover over a token for the reason). The <span class=\"window\">outlined</span> \
         passage is the windowed search's strongest one.</p>\n",
    );
    for (i, doc) in documents.iter().enumerate() {
        document_block(page, i, doc);
    }
}

fn document_block(page: &mut String, index: usize, doc: &DocumentFinding) {
    let id = doc
        .id
        .as_ref()
        .map(|v| format!(" (id {})", v))
        .unwrap_or_default();
    let _ = write!(
        page,
        "<div class=\"doc\" id=\"doc-{index}\"><h2>{}{}: {}</h2>\n<p>{} {}</p>\n",
        escape(&doc.source),
        escape(&id),
        escape(&doc.verdict),
        chance_sentence(doc.statistics.log10_p_value, DOCUMENT_SUBJECT, Style::Html),
        rule_sentence(doc.statistics.fpr, "a document", Style::Html)
    );
    if let Some(w) = &doc.window {
        let _ = writeln!(
            page,
            "<p>Strongest passage: tokens {} to {} ({} scored, {} green); allowing for the {} \
             passages tried, the chance of a passage this strong without the key is {}{}.</p>",
            w.start,
            w.end,
            w.scored,
            w.green,
            w.windows_tried,
            odds(w.corrected_log10_p_value, Style::Html),
            if w.watermarked { ": watermarked" } else { "" }
        );
    }
    statistics_table(page, &doc.statistics);
    page.push_str("<div class=\"tokens\">");
    let window = doc.window.as_ref().map(|w| (w.start, w.end));
    for (i, token) in doc.tokens.iter().enumerate() {
        if window.is_some_and(|(start, _)| start == i) {
            page.push_str("<span class=\"window\" title=\"strongest passage\">");
        }
        let (class, reason) = match token.status.as_str() {
            "green" => ("g", "green: in the key's green list".to_string()),
            "red" => ("r", "red: not in the key's green list".to_string()),
            other => ("u", format!("not scored: {}", reason(other))),
        };
        let _ = write!(
            page,
            "<span class=\"tok {class}\" title=\"{}\">{}</span>",
            escape(&reason),
            escape(&token.text)
        );
        if window.is_some_and(|(_, end)| end == i + 1) {
            page.push_str("</span>");
        }
    }
    page.push_str("</div></div>\n");
}

/// Why a token was not scored, in words.
fn reason(status: &str) -> &str {
    match status {
        "too_little_context" => "too few tokens before it to form its context",
        "repeated" => "this context and token were already counted",
        "in_prompt" => "its context also occurs in the prompt",
        "earlier_in_text" => "its context occurs earlier in the text",
        "not_in_filter" => "its context does not occur in our own outputs",
        "unaligned" => "the suspect's prediction there is not exactly one of our tokens",
        other => other,
    }
}

fn audit_section(page: &mut String, audit: &AuditFinding) -> anyhow::Result<()> {
    let headline = format!(
        "{}: {}",
        match audit.verdict.as_str() {
            "watermarked" => "The suspect model carries the watermark",
            "nothing to score" => "Nothing could be scored",
            _ => "The watermark was not detected",
        },
        audit.conclusion
    );
    verdict_box(
        page,
        audit.statistics.watermarked,
        &headline,
        &audit.statistics,
    );
    let _ = writeln!(
        page,
        "<p>Audit of {} documents ({}, {}). A model never trained on text watermarked with \
         this key produces green tokens at the expected rate; one trained on it produces more.</p>",
        audit.documents,
        if audit.mode == "reading" {
            "open model, reading our texts"
        } else {
            "closed model, its outputs"
        },
        if audit.supervised {
            "supervised"
        } else {
            "unsupervised"
        }
    );
    statistics_table(page, &audit.statistics);
    page.push_str("<h2>Evidence as it accumulates</h2>\n");
    let fpr_label = format!(
        "threshold: {}",
        odds(audit.statistics.fpr.log10(), Style::Plain)
    );
    page.push_str("<div class=\"chart\">");
    page.push_str(&super::svg::curve(
        &audit.curve,
        audit.statistics.fpr,
        &fpr_label,
    )?);
    page.push_str("</div>");
    page.push_str(
        "<p class=\"small\">The pooled log10 p after each document: below the dashed line the \
         chance of such a result without the key is under the threshold.</p>\n<h2>Tokens not scored</h2><table>",
    );
    for (rule, count) in &audit.skipped {
        let _ = write!(
            page,
            "<tr><th>{}</th><td class=\"n\">{count}</td></tr>",
            escape(reason(rule))
        );
    }
    page.push_str("</table>\n");
    if let Some(plan) = &audit.plan {
        let _ = writeln!(page, "<h2>Plan</h2><p id=\"plan\">{}</p>", escape(plan));
    }
    if let Some(accounts) = &audit.accounts {
        accounts_section(page, accounts);
    }
    Ok(())
}

/// The per-account tests of an audit: which accounts' answers the suspect learned.
fn accounts_section(page: &mut String, accounts: &AccountsFinding) {
    let verdict = if accounts.attributed.is_empty() {
        "No account is attributed.".to_string()
    } else {
        format!(
            "The suspect learned from the answers served to: {}.",
            accounts
                .attributed
                .iter()
                .map(|a| escape(a))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let _ = writeln!(
        page,
        "<h2>Which accounts?</h2><p id=\"accounts\">{verdict} Each of the {} accounts tested has \
         its own exact test; an account is attributed when its chance, corrected for testing {} \
         accounts, is at most {}.</p><table><tr><th>account</th><th>log10 p</th>\
         <th>corrected log10 p</th><th>attributed</th></tr>",
        accounts.accounts_tested,
        accounts.accounts_tested,
        odds(accounts.fpr.log10(), Style::Html)
    );
    for a in &accounts.accounts {
        let _ = write!(
            page,
            "<tr><td>{}</td><td class=\"n\">{:.2}</td><td class=\"n\">{:.2}</td><td>{}</td></tr>",
            escape(&a.account),
            a.log10_p_value,
            a.corrected_log10_p_value,
            if a.attributed { "yes" } else { "no" }
        );
    }
    page.push_str("</table>\n");
}

fn provenance_section(page: &mut String, evidence: &Evidence) {
    page.push_str("<h2>Provenance</h2><table class=\"inputs\"><tr><th>input</th><th>path</th><th>bytes</th><th>SHA-256</th></tr>");
    for input in &evidence.inputs {
        let _ = write!(
            page,
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"hash\">{}</td></tr>",
            escape(&input.role),
            escape(&input.path),
            input.bytes,
            escape(&input.sha256)
        );
    }
    let p = &evidence.profile;
    let _ = write!(
        page,
        "</table>\n<p>Profile: key fingerprint <code>{}</code>, {}, {} seeding, width {}, γ {}, \
         δ {}, vocabulary {}, tokenizer <code>{}</code>.</p>\n",
        escape(&p.key_fingerprint),
        escape(&p.spec),
        p.scheme.seeding,
        p.scheme.width,
        p.scheme.gamma,
        p.scheme.delta,
        p.vocab_size,
        escape(p.tokenizer_fingerprint.as_deref().unwrap_or("none"))
    );
    match &evidence.commitment {
        Some(c) => {
            let _ = writeln!(
                page,
                "<p id=\"commitment\">Key commitment <code>{}</code>, published {}: it opens \
                 with this key and these parameters.</p>",
                escape(&c.commitment),
                escape(&c.created)
            );
        }
        None => page.push_str("<p>No key commitment was given.</p>\n"),
    }
    let command: Vec<String> = evidence
        .command_line
        .iter()
        .map(|a| shell_word(a))
        .collect();
    let _ = write!(
        page,
        "<p>Command: <code>{}</code><br>Working directory: <code>{}</code></p>\n\
         <h2>How to reproduce</h2><p>With the input files above (their SHA-256 must match), the \
         profile and the revealed key, run in the working directory:</p>\
         <p><code>tracemark verify-report REPORT_DIR --profile PROFILE</code></p><p>It checks \
         every input's SHA-256, the profile against these parameters and the commitment, \
         recomputes every number on this page with <code>tracemark {}</code>, and names the \
         first difference if there is one.</p>\n",
        escape(&command.join(" ")),
        escape(&evidence.working_directory),
        escape(
            &evidence
                .rerun
                .iter()
                .map(|a| shell_word(a))
                .collect::<Vec<_>>()
                .join(" ")
        )
    );
}

/// A word quoted for a POSIX shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_text_is_escaped_and_words_are_quoted() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(shell_word("a.txt"), "a.txt");
        assert_eq!(shell_word("it's here"), r"'it'\''s here'");
    }
}
