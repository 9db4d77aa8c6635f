"""The delta-rs baseline of scripts/bench: the same bulk insert and upsert as inlet's, done
with the `deltalake` Python package (delta-rs) on local disk.

    bench_delta.py DIR bulk|merge|all [--expect-rows N]

DIR holds the data the Rust bench generated: `bulk.parquet` (the bulk insert) and
`upsert.parquet` (the changes, with a boolean `_deleted` column flagging deletes). The Delta
table is created at DIR/delta.

- `bulk`: `write_deltalake` of bulk.parquet into a new table.
- `merge`: `DeltaTable.merge` of upsert.parquet on `id`: matched and flagged rows are deleted,
  matched unflagged rows updated (all columns), unmatched unflagged rows inserted.
- `all`: both, in this process.

The input file is read into memory before the clock starts (inlet's bench times its commit of an
in-memory batch too). Prints one JSON line per step: rows, seconds, rows_per_s, files and bytes
written, the process's resident memory before the step (`base_rss_kib`) and its peak so far
(`peak_rss_kib`, getrusage ru_maxrss). With --expect-rows, the table's row count after the last
step must be N, or the script fails.

MERGE options: delta-rs defaults (streamed_exec=True, default writer properties and target file
size), set INLET_DELTA_STREAMED_EXEC=0 to materialize the source instead.
"""

import argparse
import json
import os
import resource
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake

DELETED = "_deleted"


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def peak_rss_kib() -> int:
    # KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def files_of(table: DeltaTable) -> dict[str, int]:
    """Data files of the table's current version, with their sizes."""
    adds = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    return dict(zip(adds["path"], adds["size_bytes"]))


def report(step: str, rows: int, secs: float, base: int, written: dict[str, int], **extra):
    line = {
        "phase": step,
        "rows": rows,
        "secs": secs,
        "rows_per_s": rows / secs if secs > 0 else 0.0,
        "files": len(written),
        "bytes": sum(written.values()),
        "base_rss_kib": base,
        "peak_rss_kib": peak_rss_kib(),
        **extra,
    }
    print(json.dumps(line), flush=True)


def bulk(data_dir: str, uri: str) -> None:
    data = pq.read_table(os.path.join(data_dir, "bulk.parquet"))
    base = rss_kib()
    started = time.perf_counter()
    write_deltalake(uri, data, mode="error")
    secs = time.perf_counter() - started
    report("bulk", data.num_rows, secs, base, files_of(DeltaTable(uri)))


def merge(data_dir: str, uri: str) -> None:
    changes = pq.read_table(os.path.join(data_dir, "upsert.parquet"))
    if changes.schema.field(DELETED).type != "bool":
        sys.exit(f"bench_delta: {DELETED} in upsert.parquet is not a boolean column")
    streamed = os.environ.get("INLET_DELTA_STREAMED_EXEC", "1") != "0"
    table = DeltaTable(uri)
    before = files_of(table)
    base = rss_kib()
    started = time.perf_counter()
    metrics = (
        table.merge(
            source=changes,
            predicate="t.id = s.id",
            source_alias="s",
            target_alias="t",
            streamed_exec=streamed,
        )
        .when_matched_delete(predicate=f"s.{DELETED}")
        .when_matched_update_all(predicate=f"NOT s.{DELETED}", except_cols=[DELETED])
        .when_not_matched_insert_all(predicate=f"NOT s.{DELETED}", except_cols=[DELETED])
        .execute()
    )
    secs = time.perf_counter() - started
    table = DeltaTable(uri)
    written = {p: s for p, s in files_of(table).items() if p not in before}
    report(
        "merge",
        changes.num_rows,
        secs,
        base,
        written,
        updated=metrics.get("num_target_rows_updated"),
        inserted=metrics.get("num_target_rows_inserted"),
        deleted=metrics.get("num_target_rows_deleted"),
        streamed_exec=streamed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("step", choices=["bulk", "merge", "all"])
    parser.add_argument("--expect-rows", type=int)
    args = parser.parse_args()
    uri = os.path.join(args.dir, "delta")
    if args.step in ("bulk", "all"):
        bulk(args.dir, uri)
    if args.step in ("merge", "all"):
        merge(args.dir, uri)
    if args.expect_rows is not None:
        count = DeltaTable(uri).to_pyarrow_dataset().count_rows()
        if count != args.expect_rows:
            sys.exit(
                f"bench_delta: the Delta table has {count} rows after {args.step}, "
                f"expected {args.expect_rows}"
            )


if __name__ == "__main__":
    main()
