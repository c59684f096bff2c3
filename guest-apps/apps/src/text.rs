//! Small text helpers for the tools: number parsing and column formatting.
//!
//! Design: integer-only (no floating point in guest code), byte-oriented where the tools
//! handle arbitrary file contents.

use alloc::string::String;

/// Parses a duration like `2`, `0.5`, `1.25s`, `300ms` into nanoseconds. Suffixes: `s`
/// (default), `ms`, `us`, `ns`, `m`, `h`.
pub fn parse_duration_nanos(text: &str) -> Option<u64> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let scale: u64 = match unit {
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" => 1_000,
        "ns" => 1,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut nanos = whole.checked_mul(scale)?;
    let mut unit_part = scale;
    for digit in frac.chars() {
        let d = u64::from(digit.to_digit(10)?);
        unit_part /= 10;
        nanos = nanos.checked_add(d * unit_part)?;
    }
    Some(nanos)
}

/// Right-aligns `value` in a field of `width` characters.
pub fn pad_left(value: &str, width: usize) -> String {
    let mut out = String::new();
    for _ in value.len()..width {
        out.push(' ');
    }
    out.push_str(value);
    out
}

/// Counts `(lines, words, bytes)` in `data` the way `wc` does: lines are `'\n'` bytes, words
/// are maximal runs of non-whitespace bytes.
pub fn count(data: &[u8], in_word: &mut bool) -> (u64, u64, u64) {
    let mut lines = 0;
    let mut words = 0;
    for &b in data {
        if b == b'\n' {
            lines += 1;
        }
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        if space {
            *in_word = false;
        } else if !*in_word {
            *in_word = true;
            words += 1;
        }
    }
    (lines, words, data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_nanos("2"), Some(2_000_000_000));
        assert_eq!(parse_duration_nanos("0.5"), Some(500_000_000));
        assert_eq!(parse_duration_nanos(".25s"), Some(250_000_000));
        assert_eq!(parse_duration_nanos("300ms"), Some(300_000_000));
        assert_eq!(parse_duration_nanos("1m"), Some(60_000_000_000));
        assert_eq!(parse_duration_nanos("x"), None);
        assert_eq!(parse_duration_nanos(""), None);
        assert_eq!(parse_duration_nanos("1y"), None);
    }

    #[test]
    fn counting() {
        let mut in_word = false;
        assert_eq!(count(b"hello world\nfoo\n", &mut in_word), (2, 3, 16));
        let mut in_word = false;
        let (_, w1, _) = count(b"ab", &mut in_word);
        let (_, w2, _) = count(b"cd ef", &mut in_word);
        assert_eq!(w1 + w2, 2, "a word split across reads counts once");
    }

    #[test]
    fn padding() {
        assert_eq!(pad_left("12", 5), "   12");
        assert_eq!(pad_left("123456", 3), "123456");
    }
}
