//! Statistics in words a non-statistician reads correctly.

/// How a power of ten is written: `10^24` in plain text, `10<sup>24</sup>` in HTML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Plain,
    Html,
}

fn power_of_ten(exponent: i64, style: Style) -> String {
    match style {
        Style::Plain => format!("10^{exponent}"),
        Style::Html => format!("10<sup>{exponent}</sup>"),
    }
}

/// The p-value as odds: "35%", "1 in 2,345", "1 in 3.2 × 10^24", "1 in 10^24".
pub fn odds(log10_p: f64, style: Style) -> String {
    if !log10_p.is_finite() || log10_p >= 0.0 {
        return "100%".to_string();
    }
    if log10_p > -2.0 {
        let percent = 10f64.powf(log10_p) * 100.0;
        return if percent >= 10.0 {
            format!("{percent:.0}%")
        } else {
            format!("{percent:.1}%")
        };
    }
    let inverse = -log10_p;
    if inverse < 6.0 {
        let n = 10f64.powf(inverse).round() as u64;
        return format!("1 in {}", watermark_core::grouped(n));
    }
    let mut exponent = inverse.floor() as i64;
    let mut mantissa = 10f64.powf(inverse - exponent as f64);
    if (mantissa * 10.0).round() >= 100.0 {
        mantissa = 1.0;
        exponent += 1;
    }
    if (mantissa * 10.0).round() == 10.0 {
        format!("1 in {}", power_of_ten(exponent, style))
    } else {
        format!("1 in {mantissa:.1} × {}", power_of_ten(exponent, style))
    }
}

/// The sentence a reader needs: what the number is the chance of. `subject` says what would
/// score this high without the watermark ("a document not written with this key").
pub fn chance_sentence(log10_p: f64, subject: &str, style: Style) -> String {
    format!(
        "The chance that {subject} scores this high (or higher) is {}.",
        odds(log10_p, style)
    )
}

/// The decision rule, in words.
pub fn rule_sentence(fpr: f64, what: &str, style: Style) -> String {
    format!(
        "tracemark calls {what} watermarked when that chance is at most {}, a threshold fixed \
         before looking at the result: the rate of false accusations it allows.",
        odds(fpr.log10(), style)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odds_read_as_a_person_would_say_them() {
        assert_eq!(odds(-24.0, Style::Plain), "1 in 10^24");
        assert_eq!(odds(-24.5, Style::Plain), "1 in 3.2 × 10^24");
        assert_eq!(odds(-24.0001, Style::Html), "1 in 10<sup>24</sup>");
        assert_eq!(odds(-24.999_99, Style::Plain), "1 in 10^25");
        assert_eq!(odds(-6.0, Style::Plain), "1 in 10^6");
        assert_eq!(odds(-3.3698, Style::Plain), "1 in 2,343");
        assert_eq!(odds(0.35f64.log10(), Style::Plain), "35%");
        assert_eq!(odds(0.0, Style::Plain), "100%");
        assert_eq!(odds(0.05f64.log10(), Style::Plain), "5.0%");
        assert!(chance_sentence(-24.0, "text", Style::Plain).contains("is 1 in 10^24."));
        assert!(rule_sentence(1e-6, "a document", Style::Plain).contains("at most 1 in 10^6"));
    }
}
