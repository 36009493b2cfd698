//! Scrubbing user-supplied values (names, hosts, header values) before they reach a log line,
//! so that a client cannot forge log entries or send terminal escapes to whoever reads them.

/// Longest user-supplied value kept, in characters.
const MAX_CHARS: usize = 256;

/// Drops control characters and truncates long values (marking the cut with `…`).
pub fn clean(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_CHARS)
        .collect();
    if raw.chars().filter(|c| !c.is_control()).count() > MAX_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_escape_sequences_cannot_forge_log_lines() {
        assert_eq!(
            clean("ops\r\n2026-01-01 INFO fake\u{1b}[31m\u{0}"),
            "ops2026-01-01 INFO fake[31m"
        );
    }

    #[test]
    fn long_values_are_truncated_with_a_marker() {
        let cleaned = clean(&"x".repeat(1000));
        assert_eq!(cleaned.chars().count(), MAX_CHARS + 1);
        assert!(cleaned.ends_with('…'));
        assert_eq!(clean("short"), "short");
    }
}
