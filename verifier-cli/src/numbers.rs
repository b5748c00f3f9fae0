//! How numbers read in the tables and reports of `detect` and `audit`.

/// Two decimals, without a "-0.00".
pub fn fixed(x: f64) -> String {
    let s = format!("{x:.2}");
    if s == "-0.00" {
        "0.00".to_string()
    } else {
        s
    }
}

/// `3.1e-12`, or `<1e-308` when the p-value underflows (its log10 is still exact).
pub fn format_p(p: f64) -> String {
    if p == 0.0 {
        "<1e-308".to_string()
    } else {
        format!("{p:.1e}")
    }
}

/// `0.01` for ordinary rates, `1e-6` for small ones.
pub fn format_fpr(fpr: f64) -> String {
    if fpr >= 1e-3 {
        format!("{fpr}")
    } else {
        format!("{fpr:e}")
    }
}

/// A count with thousands separators: `5,708` (the core writes its conclusions so).
pub use watermark_core::grouped;

/// Column widths for a text table: each column as wide as its widest cell, header included.
pub fn column_widths<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    widths
}

/// One line of a text table: cells padded to `widths`, two spaces apart, left-aligned where
/// `left(column)`, else right-aligned; trailing spaces trimmed.
pub fn table_line<'a>(
    cells: impl Iterator<Item = &'a str>,
    widths: &[usize],
    left: impl Fn(usize) -> bool,
) -> String {
    let mut text = String::new();
    for (column, (cell, &width)) in cells.zip(widths).enumerate() {
        if column > 0 {
            text.push_str("  ");
        }
        if left(column) {
            text.push_str(&format!("{cell:<width$}"));
        } else {
            text.push_str(&format!("{cell:>width$}"));
        }
    }
    text.trim_end().to_string()
}

/// ", N unaligned" for a skipped-counts line when a cross-tokenizer reading left tokens
/// unaligned, else nothing (the count is only shown when it happened).
pub fn unaligned_suffix(unaligned: u64) -> String {
    if unaligned > 0 {
        format!(", {unaligned} unaligned")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_for_the_table() {
        assert_eq!(format_p(3.14e-12), "3.1e-12");
        assert_eq!(format_p(0.0), "<1e-308");
        assert_eq!(fixed(-0.001), "0.00");
        assert_eq!(fixed(-41.987), "-41.99");
        assert_eq!(format_fpr(1e-6), "1e-6");
        assert_eq!(format_fpr(0.01), "0.01");
        assert_eq!(grouped(5708), "5,708");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
