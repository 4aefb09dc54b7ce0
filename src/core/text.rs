//! Text taken from objects, made safe to print: names, hosts and keys can hold control
//! characters (an ANSI escape recolours a terminal, a NUL or a newline forges log lines),
//! bidirectional overrides (U+202E shows `gro.nibptth` as `httpbin.org`) and invisible
//! characters. Every finding and denial passes through `printable` before it reaches an
//! answer, a log line or kubectl's terminal.
//!
//! Which characters are escaped is decided by the standard library's `char::escape_debug`
//! (Unicode's printable table, kept current with the toolchain) rather than by a list of our
//! own; quotes and backslashes, which it also escapes, are left as they are, so messages that
//! quote a value stay readable.

use std::borrow::Cow;

/// True for a character `printable` escapes: control, format (bidi, zero-width), separator
/// other than space, unassigned, and combining marks.
pub fn is_unprintable(c: char) -> bool {
    // ASCII is settled without building the escape: only its controls (below space, and DEL)
    // are escaped; `escape_debug` agrees (the test below checks all 128).
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.escape_debug().len() > 1
}

/// `s` with every unprintable character written as a Rust escape (`\u{1b}`, `\0`, `\n`,
/// `\u{202e}`); printable non-ASCII (`ü`) is kept. Borrowed when nothing needed escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    // Almost every name and host is printable ASCII, which `escape_debug` never escapes (but
    // for quotes and backslashes, kept above): a byte scan settles them without decoding chars
    // (escaping was 3 % of a review's CPU in bench/results/profile-closed-loop.md).
    if printable_ascii(s) || !s.chars().any(is_unprintable) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_unprintable(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Only printable ASCII (space to `~`)? Judged 32 bytes at a time without stopping at each
/// byte, which the compiler turns into vector compares: a warning line of a few hundred bytes
/// cost some 2,000 instructions a review byte by byte (bench/instructions_ab.py).
fn printable_ascii(s: &str) -> bool {
    s.as_bytes().chunks(32).all(|chunk| {
        chunk
            .iter()
            .fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_ascii_is_space_to_tilde_wherever_a_byte_stands() {
        // Positions on both sides of the 32-byte chunks, and in the last, short one.
        for at in [0, 5, 31, 32, 40, 63, 64, 69] {
            for c in (0u8..128)
                .map(char::from)
                .chain(['ü', '\u{202e}', '\u{7f}', '😀'])
            {
                let mut s = "a".repeat(70);
                s.replace_range(at..at + 1, c.encode_utf8(&mut [0; 4]));
                let want = (' '..='~').contains(&c);
                assert_eq!(printable_ascii(&s), want, "{c:?} at {at}");
            }
        }
        assert!(printable_ascii(""));
    }

    #[test]
    fn ascii_is_judged_as_escape_debug_judges_it() {
        for b in 0u8..128 {
            let c = char::from(b);
            let by_escape = !matches!(c, '"' | '\'' | '\\') && c.escape_debug().len() > 1;
            assert_eq!(is_unprintable(c), by_escape, "{b:#x}");
        }
    }

    #[test]
    fn unprintable_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(printable("httpbin.org"), Cow::Borrowed(_)));
        assert_eq!(printable("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(printable("nul\0x"), "nul\\0x");
        assert_eq!(printable("two\nlines\r\t"), "two\\nlines\\r\\t");
        assert_eq!(printable("\u{202e}gro.nibptth"), "\\u{202e}gro.nibptth");
        assert_eq!(printable("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(
            printable("\u{2066}isolate\u{2069}"),
            "\\u{2066}isolate\\u{2069}"
        );
        assert_eq!(printable("bom\u{feff}"), "bom\\u{feff}");
        assert_eq!(printable("del\u{7f}c1\u{85}"), "del\\u{7f}c1\\u{85}");
        assert_eq!(printable("ünïcödé.例え.jp"), "ünïcödé.例え.jp");
        assert_eq!(
            printable(r#"host "x" isn't \ ok"#),
            r#"host "x" isn't \ ok"#
        );
        // Printable ASCII is exactly what the fast path lets through unchanged.
        for b in 0u8..0x80 {
            let c = char::from(b);
            assert_eq!(
                is_unprintable(c),
                !(0x20..0x7f).contains(&b),
                "{b:#x} and the ASCII fast path disagree"
            );
        }
        // Escaping is idempotent: its output is printable ASCII.
        let once = printable("\u{1b}\0\u{202e}\n").into_owned();
        assert_eq!(printable(&once), once);
    }
}
