//! A `multipart/form-data` body (RFC 7578) split into its parts, from a body already in memory
//! and already held to its limit: each part's name, filename and content as a slice of the body.

use bytes::Bytes;

/// Most parts one body may have (a submission has at most two).
const MAX_PARTS: usize = 16;
/// Largest header block of one part.
const MAX_PART_HEADERS: usize = 8 * 1024;

/// One part of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition: form-data`.
    pub name: String,
    pub filename: Option<String>,
    pub content: Bytes,
}

/// Why a body is not multipart/form-data; the text is the client's error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Malformed(pub String);

fn malformed(message: impl Into<String>) -> Malformed {
    Malformed(message.into())
}

/// The `boundary` parameter of a `multipart/form-data` content type: 1 to 70 characters,
/// perhaps quoted.
pub(crate) fn boundary(content_type: &str) -> Result<String, Malformed> {
    let boundary = params(content_type)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or_else(|| malformed("the multipart/form-data content type has no boundary"))?;
    if boundary.is_empty() || boundary.len() > 70 || !boundary.is_ascii() {
        return Err(malformed(
            "the multipart boundary must be 1 to 70 ASCII characters",
        ));
    }
    Ok(boundary)
}

/// Splits `body` at `boundary` into its parts. The preamble and epilogue are ignored; a body
/// without a closing delimiter, a part without a `form-data` disposition naming it, or more
/// than a few parts is malformed.
pub(crate) fn parse(body: &Bytes, boundary: &str) -> Result<Vec<Part>, Malformed> {
    let opening = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let start = if body.starts_with(opening.as_bytes()) {
        0
    } else {
        memchr::memmem::find(body, delimiter.as_bytes())
            .map(|at| at + 2)
            .ok_or_else(|| malformed("the body does not contain its multipart boundary"))?
    };
    let mut at = start + opening.len();
    let finder = memchr::memmem::Finder::new(delimiter.as_bytes());
    let mut parts = Vec::new();
    loop {
        // After a delimiter: "--" closes the body; otherwise optional whitespace, then CRLF.
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        while matches!(body.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err(malformed(
                "a multipart boundary is not followed by a line break",
            ));
        }
        at += 2;
        if parts.len() == MAX_PARTS {
            return Err(malformed(format!("more than {MAX_PARTS} multipart parts")));
        }
        let rest = &body[at..];
        // A part with no headers starts with the blank line itself (and is refused below for
        // lacking a disposition).
        let (headers, content_start) = if rest.starts_with(b"\r\n") {
            ("", at + 2)
        } else {
            let window = &rest[..rest.len().min(MAX_PART_HEADERS + 4)];
            let end = memchr::memmem::find(window, b"\r\n\r\n")
                .ok_or_else(|| malformed("a multipart part's headers do not end"))?;
            let headers = std::str::from_utf8(&rest[..end])
                .map_err(|_| malformed("a multipart part's headers are not UTF-8"))?;
            (headers, at + end + 4)
        };
        let content_len = finder
            .find(&body[content_start..])
            .ok_or_else(|| malformed("the multipart body has no closing boundary"))?;
        let (name, filename) = disposition(headers)?;
        parts.push(Part {
            name,
            filename,
            content: body.slice(content_start..content_start + content_len),
        });
        at = content_start + content_len + delimiter.len();
    }
}

/// The `name` and `filename` of a part's `Content-Disposition: form-data` header.
fn disposition(headers: &str) -> Result<(String, Option<String>), Malformed> {
    let value = headers
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-disposition"))
        .map(|(_, value)| value.trim())
        .ok_or_else(|| malformed("a multipart part has no Content-Disposition header"))?;
    let kind = value.split(';').next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(malformed(format!(
            "a multipart part's disposition is {kind:?}, not form-data"
        )));
    }
    let params = params(value);
    let find = |wanted: &str| {
        params
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| value.clone())
    };
    let name = find("name").ok_or_else(|| malformed("a multipart part has no name"))?;
    Ok((name, find("filename")))
}

/// The `;`-separated `name=value` parameters after a header's first item; values may be
/// quoted strings with backslash escapes (a quoted `;` does not separate).
fn params(header: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = header.chars().peekable();
    // Skip the first item (the media type or disposition kind).
    for c in chars.by_ref() {
        if c == ';' {
            break;
        }
    }
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ';') {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_owned();
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
            // Anything up to the next ';' after a quoted value is ignored.
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            value = chars
                .by_ref()
                .take_while(|c| *c != ';')
                .collect::<String>()
                .trim()
                .to_owned();
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Bytes {
        Bytes::from(text.replace('\n', "\r\n"))
    }

    #[test]
    fn the_boundary_is_read_quoted_or_not() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").unwrap(),
            "abc"
        );
        assert_eq!(
            boundary("multipart/form-data; charset=x; boundary=\"a;b c\"").unwrap(),
            "a;b c"
        );
        assert!(boundary("multipart/form-data").is_err());
        assert!(boundary(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }

    #[test]
    fn parts_are_split_with_their_names_and_binary_content() {
        let mut raw = body(
            "preamble\n--XX\nContent-Disposition: form-data; name=\"options\"\n\n{\"tasks\":[\"metadata\"]}\n--XX\nContent-Disposition: form-data; name=\"file\"; filename=\"a;b.png\"\nContent-Type: image/png\n\n",
        )
        .to_vec();
        raw.extend_from_slice(b"\x89PNG\r\n\x1a\n--X\r\n");
        raw.extend_from_slice(b"\r\n--XX--\r\nepilogue");
        let parts = parse(&Bytes::from(raw), "XX").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "options");
        assert_eq!(&parts[0].content[..], b"{\"tasks\":[\"metadata\"]}");
        assert_eq!(parts[1].name, "file");
        assert_eq!(parts[1].filename.as_deref(), Some("a;b.png"));
        assert_eq!(&parts[1].content[..], b"\x89PNG\r\n\x1a\n--X\r\n");
    }

    #[test]
    fn broken_bodies_are_malformed() {
        for bad in [
            "no boundary here",
            "--XX\nContent-Disposition: form-data; name=\"file\"\n\nbytes without an end",
            "--XX\nContent-Type: image/png\n\nx\n--XX--",
            "--XX\nContent-Disposition: attachment; name=\"file\"\n\nx\n--XX--",
            "--XX\nContent-Disposition: form-data\n\nx\n--XX--",
            "--XXjunk\n\nx\n--XX--",
        ] {
            assert!(parse(&body(bad), "XX").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_body_of_parts_is_no_parts() {
        assert_eq!(parse(&body("--XX--\n"), "XX").unwrap(), Vec::new());
    }

    #[test]
    fn too_many_parts_are_refused() {
        let part = "--XX\nContent-Disposition: form-data; name=\"p\"\n\nx\n";
        let text = format!("{}--XX--", part.repeat(MAX_PARTS + 1));
        assert!(parse(&body(&text), "XX").is_err());
    }
}
