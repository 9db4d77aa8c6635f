//! CPU work over a million rows shared out over the cores, for the steps of a commit that run
//! alone (planning, concatenating the batch): scoped threads, so that the work borrows its input.

use std::ops::Range;

/// Rows below which one thread does the work: starting threads costs more than it saves.
pub const MIN_ROWS: usize = 1 << 16;

/// The cores to use (at most eight).
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `f(0)`, …, `f(parts - 1)`, each on a thread of its own (the first on this one), in order. A
/// panic in one of them is resumed here.
pub fn each<T: Send>(parts: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if parts <= 1 {
        return (0..parts).map(&f).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let others: Vec<_> = (1..parts).map(|i| scope.spawn(move || f(i))).collect();
        let first = f(0);
        std::iter::once(first)
            .chain(
                others
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
            )
            .collect()
    })
}

/// `0..n` in as many near-equal ranges as there are cores to work on them (one range below
/// [`MIN_ROWS`] rows per core).
pub fn ranges(n: usize) -> Vec<Range<usize>> {
    let parts = threads().min(n / MIN_ROWS).max(1);
    let size = n.div_ceil(parts);
    (0..parts)
        .map(|i| i * size..((i + 1) * size).min(n))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_row_once_in_order() {
        for n in [0, 1, MIN_ROWS - 1, MIN_ROWS * 2 + 1, 1_000_003] {
            let ranges = ranges(n);
            assert!(!ranges.is_empty());
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().map(|r| r.end), Some(n));
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        }
        assert_eq!(each(3, |i| i * 10), vec![0, 10, 20]);
        assert!(each(0, |i| i).is_empty());
    }
}
