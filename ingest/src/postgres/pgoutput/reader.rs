//! A bounds-checked cursor over one pgoutput message: big-endian integers, NUL-terminated
//! strings and length-prefixed byte strings. Every failure names the message tag and the
//! byte offset of the field that could not be read.

use bytes::Bytes;

use super::super::Lsn;
use crate::error::{Error, Result};

#[derive(Debug)]
pub(super) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    /// A reader positioned after the tag byte (`buf[0]`), which must exist.
    pub fn new(buf: &'a Bytes, tag: u8) -> Self {
        Reader { buf, pos: 1, tag }
    }

    /// The offset of the next byte to read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, or a truncation error naming `field`.
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let start = self.pos;
        let end = start
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| self.truncated(start, field))?;
        self.pos = end;
        Ok(&self.buf[start..end])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn i16(&mut self, field: &'static str) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub fn i32(&mut self, field: &'static str) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// An Int32 that PostgreSQL declares unsigned (OIDs, xids).
    pub fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub fn i64(&mut self, field: &'static str) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub fn lsn(&mut self, field: &'static str) -> Result<Lsn> {
        Ok(Lsn(u64::from_be_bytes(self.array(field)?)))
    }

    /// A NUL-terminated UTF-8 string (the NUL is consumed, not returned).
    pub fn cstr(&mut self, field: &'static str) -> Result<String> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.truncated(start, field))?;
        let text = std::str::from_utf8(&rest[..len])
            .map_err(|e| self.malformed(start, format!("{field} is not valid UTF-8: {e}")))?;
        self.pos = start + len + 1;
        Ok(text.to_owned())
    }

    /// `n` bytes as a slice of the message buffer (no copy).
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<Bytes> {
        let start = self.pos;
        self.take(n, field)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// Fails if bytes are left after the last field.
    pub fn finish(self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.malformed(self.pos, format!("{n} unexpected trailing byte(s)"))),
        }
    }

    pub fn truncated(&self, offset: usize, field: &'static str) -> Error {
        Error::PgOutputTruncated {
            tag: self.tag,
            offset,
            field,
        }
    }

    pub fn malformed(&self, offset: usize, reason: String) -> Error {
        Error::PgOutputMalformed {
            tag: self.tag,
            offset,
            reason,
        }
    }
}
