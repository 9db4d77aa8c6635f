//! MariaDB global transaction ids: `domain-server-seq` (`0-1-57`). A GTID position is one GTID
//! per replication domain, the last transaction applied in it (`@@gtid_binlog_pos`,
//! `BINLOG_GTID_POS(file, pos)`, what a replica sends as `@slave_connect_state`). Unlike a binlog
//! file and offset it means the same on every server of a replication topology, which is what
//! lets a lake table follow its source across a failover.

use std::collections::BTreeMap;
use std::fmt;

/// MariaDB's `GTID_EVENT` (0xA2), which opens every transaction in place of `BEGIN` once the
/// reader announces `@mariadb_slave_capability=4`.
pub const GTID_EVENT: u8 = 0xA2;

/// `FL_STANDALONE`: a group of one event (DDL) that no `COMMIT`/`XID` ends.
pub const FL_STANDALONE: u8 = 1;

/// One transaction's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl Gtid {
    /// `0-1-57`.
    pub fn parse(text: &str) -> Option<Gtid> {
        let mut parts = text.trim().splitn(3, '-');
        Some(Gtid {
            domain: parts.next()?.parse().ok()?,
            server: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        })
    }

    /// The GTID and flags of a `GTID_EVENT`'s body (checksum stripped): seq u64, domain u32,
    /// flags u8, all little-endian; the server id is the event header's.
    pub fn from_event(data: &[u8], server: u32) -> Option<(Gtid, u8)> {
        let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        let flags = *data.get(12)?;
        Some((
            Gtid {
                domain,
                server,
                seq,
            },
            flags,
        ))
    }
}

/// A GTID position: the last GTID of each domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPosition(BTreeMap<u32, Gtid>);

impl GtidPosition {
    /// `0-1-57,1-2-3` (empty text: the empty position, before any transaction).
    pub fn parse(text: &str) -> Option<GtidPosition> {
        let mut position = GtidPosition::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid = Gtid::parse(part)?;
            if position.0.insert(gtid.domain, gtid).is_some() {
                return None;
            }
        }
        Some(position)
    }

    /// The transaction `gtid` is applied.
    pub fn apply(&mut self, gtid: Gtid) {
        self.0.insert(gtid.domain, gtid);
    }

    /// Whether the transaction `gtid` is at or before this position (within a domain sequence
    /// numbers grow in binlog order).
    pub fn includes(&self, gtid: &Gtid) -> bool {
        self.0.get(&gtid.domain).is_some_and(|g| g.seq >= gtid.seq)
    }

    /// The position both `self` and `other` have reached: per domain the lower GTID, and no
    /// GTID for a domain one of them has not seen (a stream from there sends that domain whole).
    pub fn meet(&self, other: &GtidPosition) -> GtidPosition {
        GtidPosition(
            self.0
                .iter()
                .filter_map(|(domain, mine)| {
                    let theirs = other.0.get(domain)?;
                    Some((
                        *domain,
                        if mine.seq <= theirs.seq {
                            *mine
                        } else {
                            *theirs
                        },
                    ))
                })
                .collect(),
        )
    }

    /// Whether a server whose `@@gtid_binlog_state` (the last GTID of every domain and server
    /// in its binlog) is `state` has applied the transactions of this position: the server that
    /// wrote each of them, in its domain, at or past it. An unrelated server that happens to
    /// share domain and sequence numbers differs in the server ids.
    pub fn reached_by(&self, state: &[Gtid]) -> bool {
        self.0.values().all(|mine| {
            state
                .iter()
                .any(|s| s.domain == mine.domain && s.server == mine.server && s.seq >= mine.seq)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.values().map(Gtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// `@@gtid_binlog_state`: every `domain-server-seq` of the binlog, several per domain.
pub fn parse_state(text: &str) -> Option<Vec<Gtid>> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(Gtid::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gtid_event_body_decodes_as_mariadb_writes_it() {
        // The body of `0-1-6` as MariaDB 10.11 sent it: seq 6, domain 0, flags 0x0c
        // (transactional | allow parallel), six zero bytes.
        let body = [6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c, 0, 0, 0, 0, 0, 0];
        let (gtid, flags) = Gtid::from_event(&body, 1).expect("gtid");
        assert_eq!(gtid.to_string(), "0-1-6");
        assert_eq!(flags & FL_STANDALONE, 0);
        // A DDL in domain 7 at a sequence past 2^32, standalone.
        let mut body = (1u64 << 40 | 3).to_le_bytes().to_vec();
        body.extend(7u32.to_le_bytes());
        body.push(FL_STANDALONE | 32);
        let (gtid, flags) = Gtid::from_event(&body, 4_000_000_000).expect("gtid");
        assert_eq!(gtid.to_string(), format!("7-4000000000-{}", 1u64 << 40 | 3));
        assert_eq!(flags & FL_STANDALONE, FL_STANDALONE);
        assert!(Gtid::from_event(&body[..12], 1).is_none());
    }

    #[test]
    fn positions_parse_apply_and_meet_per_domain() {
        let a = GtidPosition::parse("0-1-57, 2-3-9").expect("a");
        assert_eq!(a.to_string(), "0-1-57,2-3-9");
        assert_eq!(GtidPosition::parse(""), Some(GtidPosition::default()));
        for bad in ["0-1", "0-1-x", "0-1-5,0-2-6", "-1-2-3"] {
            assert_eq!(GtidPosition::parse(bad), None, "{bad}");
        }
        assert!(a.includes(&Gtid::parse("0-2-57").expect("g")));
        assert!(!a.includes(&Gtid::parse("0-1-58").expect("g")));
        assert!(!a.includes(&Gtid::parse("1-1-1").expect("g")));
        let b = GtidPosition::parse("0-2-60,1-1-4,2-3-2").expect("b");
        assert_eq!(a.meet(&b).to_string(), "0-1-57,2-3-2");
        assert_eq!(b.meet(&a), a.meet(&b));
        let mut c = a.clone();
        c.apply(Gtid::parse("1-5-1").expect("g"));
        c.apply(Gtid::parse("0-2-58").expect("g"));
        assert_eq!(c.to_string(), "0-2-58,1-5-1,2-3-9");
    }

    #[test]
    fn a_position_is_reached_only_by_a_server_holding_its_transactions() {
        let position = GtidPosition::parse("0-1-57").expect("p");
        // A replica of server 1 that went on as primary (server 2) holds 0-1-57.
        let replica = parse_state("0-1-80,0-2-95").expect("state");
        assert!(position.reached_by(&replica));
        // A replica that had not caught up, and an unrelated server with the same numbers.
        assert!(!position.reached_by(&parse_state("0-1-50").expect("state")));
        assert!(!position.reached_by(&parse_state("0-2-95").expect("state")));
        assert!(GtidPosition::default().reached_by(&[]));
    }
}
