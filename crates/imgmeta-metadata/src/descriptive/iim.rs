//! IPTC-IIM: the datasets of record 2 that `descriptive` reports, decoded as record 1's
//! coded character set says (UTF-8 when it is `ESC % G`, Latin-1 otherwise).

use super::Found;

/// Dataset 1:90, the coded character set, and the escape sequence that means UTF-8.
const CODED_CHARACTER_SET: (u8, u8) = (1, 90);
const UTF8: &[u8] = b"\x1b%G";
const OBJECT_NAME: (u8, u8) = (2, 5);
const KEYWORDS: (u8, u8) = (2, 25);
const BY_LINE: (u8, u8) = (2, 80);
const CREDIT: (u8, u8) = (2, 110);
const COPYRIGHT: (u8, u8) = (2, 116);
const CAPTION: (u8, u8) = (2, 120);

/// Reads the datasets of `block`: each is a `0x1C` tag marker, record and dataset numbers
/// and a 2-byte length (an extended length, high bit set, is a dataset larger than any
/// text we read and ends the walk). A repeated title, caption, credit or copyright counts
/// once (the first); by-lines are joined with "; " as XMP's creators are.
pub(super) fn read(block: &[u8]) -> Found {
    let mut datasets: Vec<((u8, u8), &[u8])> = Vec::new();
    let mut pos = 0usize;
    while let Some(&[0x1c, record, dataset, high, low]) = block.get(pos..pos + 5) {
        let len = usize::from(u16::from_be_bytes([high, low]));
        if len & 0x8000 != 0 {
            break;
        }
        let start = pos + 5;
        let Some(data) = block.get(start..start + len) else {
            break;
        };
        datasets.push(((record, dataset), data));
        pos = start + len;
    }
    let utf8 = datasets
        .iter()
        .any(|&(id, data)| id == CODED_CHARACTER_SET && data.starts_with(UTF8));
    let text = |data: &[u8]| -> String {
        if utf8 {
            String::from_utf8_lossy(data).into_owned()
        } else {
            data.iter().map(|&b| char::from(b)).collect()
        }
    };
    let all = |wanted: (u8, u8)| -> Vec<String> {
        datasets
            .iter()
            .filter(|&&(id, _)| id == wanted)
            .map(|&(_, data)| text(trim_nul(data)))
            .filter(|t| !t.is_empty())
            .collect()
    };
    let first = |wanted| all(wanted).into_iter().next();
    let by_lines = all(BY_LINE);
    Found {
        title: first(OBJECT_NAME),
        description: first(CAPTION),
        keywords: all(KEYWORDS),
        creator: (!by_lines.is_empty()).then(|| by_lines.join("; ")),
        copyright: first(COPYRIGHT),
        credit: first(CREDIT),
        digital_source_type: None,
    }
}

/// Some writers end a dataset with NULs; exiftool drops them.
fn trim_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    &data[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(record: u8, number: u8, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x1c, record, number];
        out.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn without_a_coded_character_set_text_is_latin_1() {
        let mut block = dataset(2, 5, b"Caf\xe9");
        block.extend(dataset(2, 25, b"one"));
        block.extend(dataset(2, 25, b"two"));
        block.extend(dataset(2, 80, b"Ann"));
        block.extend(dataset(2, 80, b"Bob"));
        let found = read(&block);
        assert_eq!(found.title.as_deref(), Some("Café"));
        assert_eq!(found.keywords, ["one", "two"]);
        assert_eq!(found.creator.as_deref(), Some("Ann; Bob"));
        assert_eq!(found.description, None);
    }

    #[test]
    fn esc_percent_g_means_utf_8() {
        let mut block = dataset(1, 90, b"\x1b%G");
        block.extend(dataset(2, 120, "Café ☕".as_bytes()));
        assert_eq!(read(&block).description.as_deref(), Some("Café ☕"));
    }

    #[test]
    fn a_dataset_running_past_the_block_ends_the_walk() {
        let mut block = dataset(2, 116, b"(c) me");
        block.extend([0x1c, 2, 110, 0x10, 0x00, b'x']);
        let found = read(&block);
        assert_eq!(found.copyright.as_deref(), Some("(c) me"));
        assert_eq!(found.credit, None);
    }
}
