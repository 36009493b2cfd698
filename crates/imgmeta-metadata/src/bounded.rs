//! Cutting text taken from the file (EXIF strings, ICC descriptions) to a bounded length.
//!
//! Whoever made the file chose these strings: a hostile one can point several EXIF fields
//! at one multi-megabyte string, and the result would repeat it in full for each. Every text
//! we report is therefore cut to [`MAX_TEXT_CHARS`] characters, on a character boundary,
//! and the caller records the cut so the result says the value is incomplete.

/// Most characters (Unicode scalar values) of any text reported from the file's metadata.
pub(crate) const MAX_TEXT_CHARS: usize = 256;

/// The first [`MAX_TEXT_CHARS`] characters of `text`, and whether anything was cut.
pub(crate) fn cut(text: &str) -> (&str, bool) {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

/// `bytes` read as UTF-8 (each invalid sequence becomes U+FFFD) and cut as [`cut`] does,
/// without converting more of a long input than the cut can keep.
pub(crate) fn cut_lossy(bytes: &[u8]) -> (String, bool) {
    // A character takes at most 4 bytes, and an invalid sequence at least 1 byte for its
    // one U+FFFD. Converting only this prefix differs from converting everything in at most
    // its last 3 bytes (a sequence the prefix splits), and the more than 1024 bytes before
    // them already hold more than MAX_TEXT_CHARS characters, so the kept text and the
    // verdict are the same as for the whole input.
    let prefix = &bytes[..bytes.len().min(4 * (MAX_TEXT_CHARS + 1))];
    let text = String::from_utf8_lossy(prefix);
    let (kept, truncated) = cut(&text);
    (kept.to_owned(), truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_at_most_256_characters_is_kept_whole() {
        let exact = "a".repeat(MAX_TEXT_CHARS);
        assert_eq!(cut(&exact), (exact.as_str(), false));
        assert_eq!(cut(""), ("", false));
    }

    #[test]
    fn longer_text_keeps_its_first_256_characters() {
        let long = "b".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(cut(&long), (&long[..MAX_TEXT_CHARS], true));
    }

    #[test]
    fn a_multi_byte_character_at_the_boundary_is_kept_whole_or_dropped_whole() {
        // 255 ASCII characters, then a 3-byte euro sign as the 256th: kept whole.
        let euro_last = format!("{}€€", "a".repeat(MAX_TEXT_CHARS - 1));
        let (kept, truncated) = cut(&euro_last);
        assert!(truncated);
        assert_eq!(kept.chars().count(), MAX_TEXT_CHARS);
        assert!(kept.ends_with('€'));
        assert_eq!(kept.len(), MAX_TEXT_CHARS - 1 + 3);

        // Only 4-byte characters: 256 of them are 1024 bytes, cut between two of them.
        let emoji = "😀".repeat(MAX_TEXT_CHARS + 10);
        let (kept, truncated) = cut(&emoji);
        assert!(truncated);
        assert_eq!(kept, "😀".repeat(MAX_TEXT_CHARS));
        assert!(emoji.is_char_boundary(kept.len()));

        // Two-byte characters whose byte count crosses 256 long before the character count.
        let accents = "é".repeat(MAX_TEXT_CHARS);
        assert_eq!(cut(&accents), (accents.as_str(), false));
    }

    #[test]
    fn converting_a_prefix_agrees_with_converting_everything() {
        // Inputs whose 1028-byte prefix ends inside a multi-byte character or an invalid
        // sequence, at every alignment, plus short and invalid ones.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for lead in 0..4 {
            for filler in ["😀", "€", "é", "a"] {
                let mut bytes = vec![b'x'; lead];
                bytes.extend(filler.repeat(400).as_bytes());
                inputs.push(bytes);
            }
            let mut invalid = vec![b'y'; lead];
            invalid.extend([0xf0, 0x9f, 0x98].repeat(500));
            inputs.push(invalid);
        }
        inputs.push(b"Canon\xff\xfeEOS".to_vec());
        inputs.push("😀".repeat(MAX_TEXT_CHARS).into_bytes());
        for bytes in inputs {
            let whole = String::from_utf8_lossy(&bytes);
            let (expected, expected_cut) = cut(&whole);
            assert_eq!(
                cut_lossy(&bytes),
                (expected.to_owned(), expected_cut),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_multi_megabyte_string_is_cut_to_256_characters() {
        let huge = vec![b'A'; 5_000_000];
        let (kept, truncated) = cut_lossy(&huge);
        assert!(truncated);
        assert_eq!(kept, "A".repeat(MAX_TEXT_CHARS));
    }
}
