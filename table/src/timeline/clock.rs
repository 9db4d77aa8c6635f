//! Instant times come from a clock that tests can replace, and are made strictly increasing so
//! that no two instants of a table ever share a time.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::InstantTime;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's UTC clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Hands out instant times that are strictly greater than every time it was told about and
/// every time it handed out before, even when the clock stands still or goes backwards.
#[derive(Debug)]
pub struct InstantGenerator {
    clock: Arc<dyn Clock>,
    last: Mutex<Option<InstantTime>>,
}

impl InstantGenerator {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        InstantGenerator {
            clock,
            last: Mutex::new(None),
        }
    }

    /// The next instant time, strictly after `floor` (the latest instant on the timeline).
    pub fn next(&self, floor: Option<&InstantTime>) -> InstantTime {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut time = InstantTime::from_datetime(self.clock.now());
        for bound in [floor, last.as_ref()].into_iter().flatten() {
            if time <= *bound {
                // Instants that are not dates (metadata-table style) cannot be followed by a
                // date-based successor; the clock's time is then already greater.
                time = bound.next().unwrap_or(time);
            }
        }
        *last = Some(time.clone());
        time
    }
}

impl Default for InstantGenerator {
    fn default() -> Self {
        InstantGenerator::new(Arc::new(SystemClock))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed(DateTime<Utc>);
    impl Clock for Fixed {
        fn now(&self) -> DateTime<Utc> {
            self.0
        }
    }

    #[test]
    fn strictly_increasing_with_a_stopped_clock_and_a_floor() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00.500Z").map(|t| t.to_utc());
        let generator = InstantGenerator::new(Arc::new(Fixed(at.expect("valid date"))));
        let a = generator.next(None);
        let b = generator.next(None);
        assert_eq!(a.as_str(), "20261121100000500");
        assert_eq!(b.as_str(), "20261121100000501");
        let floor: InstantTime = "20261121100001000".parse().expect("valid");
        assert_eq!(generator.next(Some(&floor)).as_str(), "20261121100001001");
    }
}
