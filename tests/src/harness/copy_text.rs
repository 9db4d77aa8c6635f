//! PostgreSQL's `COPY … TO STDOUT` text format: one row per line, columns separated by tabs,
//! `\N` for NULL, backslash escapes (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\NNN`,
//! hex `\xHH`) for the rest.
//!
//! The tests read source tables this way, through the text conversions streamed values take,
//! to judge the snapshot, which reads COPY's binary format.

use std::borrow::Cow;

/// One field of a COPY row: `None` for NULL, else its bytes with escapes resolved (the caller
/// checks they are UTF-8: PostgreSQL sends the database's encoding).
pub type Field<'a> = Option<Cow<'a, [u8]>>;

/// Splits COPY text data, arriving in chunks with arbitrary boundaries, into rows.
#[derive(Debug, Default)]
pub struct CopyParser {
    partial: Vec<u8>,
}

impl CopyParser {
    /// Feeds a chunk; calls `row` for every complete line with its fields.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&[Field<'_>]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let Some(end) = memchr::memchr(b'\n', rest) else {
                self.partial.extend_from_slice(rest);
                return Ok(());
            };
            self.partial.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.partial);
            let mut fields: Vec<Field<'_>> = Vec::new();
            split(&line, &mut fields);
            row(&fields)?;
        }
        let mut fields: Vec<Field<'_>> = Vec::new();
        while let Some(end) = memchr::memchr(b'\n', rest) {
            split(&rest[..end], &mut fields);
            row(&fields)?;
            fields.clear();
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

/// The fields of a line: one pass over its tabs and backslashes.
fn split<'a>(line: &'a [u8], fields: &mut Vec<Field<'a>>) {
    let field = |bytes: &'a [u8], escaped: bool| match bytes {
        b"\\N" => None,
        _ if escaped => Some(Cow::Owned(unescape(bytes))),
        _ => Some(Cow::Borrowed(bytes)),
    };
    let (mut start, mut escaped) = (0, false);
    for at in memchr::memchr2_iter(b'\t', b'\\', line) {
        if line[at] == b'\\' {
            escaped = true;
        } else {
            fields.push(field(&line[start..at], escaped));
            (start, escaped) = (at + 1, false);
        }
    }
    fields.push(field(&line[start..], escaped));
}

fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' || i + 1 == field.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let c = field[i + 1];
        i += 2;
        match c {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_across_chunks() {
        let mut parser = CopyParser::default();
        let mut rows: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
        // Escapes of every kind, an escaped backslash before a tab, NULL next to an escaped
        // `\N` (the text), an empty field at the end, a non-UTF-8 byte by octal escape.
        let data =
            b"1\ta\\tb\t\\N\n2\t\\\\x\\101\t\n3\t\\\\\tK\xc3\xb6ln\t\\\\N\t\\351\\b\\x41\\0\n";
        for size in [1, 3, 7, data.len()] {
            rows.clear();
            for chunk in data.chunks(size) {
                parser
                    .push::<std::convert::Infallible>(chunk, |fields| {
                        rows.push(
                            fields
                                .iter()
                                .map(|f| f.as_ref().map(|c| c.to_vec()))
                                .collect(),
                        );
                        Ok(())
                    })
                    .unwrap_or_else(|never| match never {});
            }
            let text = |s: &str| Some(s.as_bytes().to_vec());
            assert_eq!(
                rows,
                vec![
                    vec![text("1"), text("a\tb"), None],
                    vec![text("2"), text("\\xA"), text("")],
                    vec![
                        text("3"),
                        text("\\"),
                        text("Köln"),
                        text("\\N"),
                        Some(vec![0xe9, 8, b'A', 0]),
                    ],
                ],
                "chunks of {size}"
            );
        }
    }
}
