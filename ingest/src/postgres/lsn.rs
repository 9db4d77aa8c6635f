//! Log sequence numbers: byte positions in PostgreSQL's write-ahead log.
//!
//! An LSN is a 64-bit number that PostgreSQL prints as two hexadecimal halves, `16/B374D848`
//! (high 32 bits, `/`, low 32 bits, upper case, no leading zeros). [`Lsn`] parses and prints
//! that form and orders like the number.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// A position in the write-ahead log (`pg_lsn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`, which PostgreSQL uses for "no position" (`InvalidXLogRecPtr`).
    pub const INVALID: Lsn = Lsn(0);

    /// Whether this is [`Lsn::INVALID`].
    pub fn is_invalid(self) -> bool {
        self == Lsn::INVALID
    }
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Self {
        Lsn(value)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> Self {
        lsn.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl FromStr for Lsn {
    type Err = Error;

    /// Parses `X/Y` where each half has 1 to 8 hexadecimal digits (either case), as
    /// PostgreSQL's `pg_lsn` input does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || Error::InvalidLsn {
            input: s.to_owned(),
        };
        let (high, low) = s.split_once('/').ok_or_else(invalid)?;
        let half = |part: &str| {
            if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(part, 16).ok()
        };
        let high = half(high).ok_or_else(invalid)?;
        let low = half(low).ok_or_else(invalid)?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_postgres() {
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert_eq!(Lsn(0x0153_D7F0).to_string(), "0/153D7F0");
        assert_eq!(Lsn(0x16_B374_D848).to_string(), "16/B374D848");
        assert_eq!(Lsn(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn parses_and_round_trips() {
        for value in [
            0,
            1,
            0x0153_D7F0,
            0x16_B374_D848,
            0xFFFF_FFFF,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let lsn = Lsn(value);
            assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        }
        assert_eq!("16/b374d848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
        assert_eq!("00000000/0000001".parse::<Lsn>().unwrap(), Lsn(1));
    }

    #[test]
    fn rejects_other_forms() {
        for bad in [
            "",
            "/",
            "0",
            "0/",
            "/0",
            "0/0/0",
            "g/0",
            "0/-1",
            "+1/0",
            " 0/0",
            "0/0 ",
            "123456789/0",
            "0/123456789",
            "0x1/0",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert!(
                matches!(&err, Error::InvalidLsn { input } if input == bad),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn orders_by_position() {
        assert!("0/FFFFFFFF".parse::<Lsn>().unwrap() < "1/0".parse::<Lsn>().unwrap());
        assert!(Lsn::INVALID.is_invalid());
        assert!(Lsn::INVALID < Lsn(1));
    }
}
