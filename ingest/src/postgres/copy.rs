//! PostgreSQL's `COPY … TO STDOUT` text format: one row per line, columns separated by tabs,
//! `\N` for NULL, backslash escapes (`\\`, `\t`, `\n`, `\r`, `\b`, `\f`, `\v`, octal `\NNN`,
//! hex `\xHH`) for the rest.

use std::borrow::Cow;

/// One field of a COPY row: `None` for NULL.
pub type Field<'a> = Option<Cow<'a, str>>;

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
            let Some(end) = rest.iter().position(|&b| b == b'\n') else {
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
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            split(&rest[..end], &mut fields);
            row(&fields)?;
            fields.clear();
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }
}

fn split<'a>(line: &'a [u8], fields: &mut Vec<Field<'a>>) {
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            fields.push(None);
        } else if field.contains(&b'\\') {
            fields.push(Some(Cow::Owned(unescape(field))));
        } else {
            fields.push(Some(String::from_utf8_lossy(field)));
        }
    }
}

fn unescape(field: &[u8]) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_across_chunks() {
        let mut parser = CopyParser::default();
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        let data = b"1\ta\\tb\t\\N\n2\t\\\\x\\101\t\n";
        for chunk in data.chunks(3) {
            parser
                .push::<()>(chunk, |fields| {
                    rows.push(
                        fields
                            .iter()
                            .map(|f| f.as_ref().map(|c| c.to_string()))
                            .collect(),
                    );
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(
            rows,
            vec![
                vec![Some("1".into()), Some("a\tb".into()), None],
                vec![Some("2".into()), Some("\\xA".into()), Some(String::new())],
            ]
        );
    }
}
