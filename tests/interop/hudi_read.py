#!/usr/bin/env python3
"""Read a Hudi table with an independent reader (PyPI `hudi`, the hudi-rs
bindings) and write every row it returns as ONE Parquet file.

Usage:
  hudi_read.py TABLE_URI --queries QUERIES.json --out-dir DIR
               (QUERIES.json: [{"name": N, "as_of": T?, "start": T?, "end": T?,
                                "hudi_options": {K: V}?}, ...];
                writes DIR/N.parquet for each and prints {"rows": {N: rows, ...}})
  hudi_read.py TABLE_URI --out FILE.parquet
               [--as-of T]                      # snapshot (time travel) as of instant T
               [--start T [--end T]]            # incremental: commits in (start, end]
               [--storage-option KEY=VALUE ...] # e.g. aws_endpoint=http://127.0.0.1:PORT

TABLE_URI is a local path (made absolute) or a URI such as s3://bucket/table.
Prints one JSON line: {"rows": N}. On error, prints a message to stderr and
exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def fail(msg: str) -> "NoReturn":  # noqa: F821
    print(f"hudi_read.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table_uri")
    p.add_argument("--out", help="Parquet file to write")
    p.add_argument("--queries", help="JSON file with a list of queries (see above)")
    p.add_argument("--out-dir", dest="out_dir", help="directory for the results of --queries")
    p.add_argument("--as-of", dest="as_of", help="snapshot as of this instant time")
    p.add_argument("--start", help="incremental read: start instant (exclusive)")
    p.add_argument("--end", help="incremental read: end instant (inclusive)")
    p.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="object store option, repeatable",
    )
    p.add_argument(
        "--hudi-option",
        dest="hudi_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="hudi option for the table, repeatable",
    )
    args = p.parse_args(argv)
    if (args.out is None) == (args.queries is None):
        p.error("give either --out or --queries with --out-dir")
    if args.queries is not None and args.out_dir is None:
        p.error("--queries needs --out-dir")
    if args.end is not None and args.start is None:
        p.error("--end needs --start")
    if args.as_of is not None and args.start is not None:
        p.error("--as-of and --start are exclusive")
    return args


def kv_pairs(items: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def table_uri(raw: str) -> str:
    if "://" in raw:
        return raw
    path = os.path.abspath(raw)
    if not os.path.isdir(path):
        fail(f"table directory {path} does not exist")
    return path


def read_query(table, uri: str, as_of, start, end, hudi_options=None):
    """One read (snapshot, as-of or incremental) as a single pyarrow Table. `hudi_options` are
    read options such as {"hoodie.read.use.read_optimized.mode": "true"}."""
    import pyarrow as pa
    from hudi import HudiQueryType, HudiReadOptions

    options = HudiReadOptions(hudi_options=hudi_options) if hudi_options else HudiReadOptions()
    if as_of is not None:
        options = options.with_as_of_timestamp(as_of)
    if start is not None:
        options = options.with_query_type(HudiQueryType.Incremental).with_start_timestamp(start)
        if end is not None:
            options = options.with_end_timestamp(end)

    try:
        batches = table.read(options)
    except Exception as e:
        fail(f"reading {uri} failed: {type(e).__name__}: {e}")

    batches = [b for b in batches if b is not None]
    if batches:
        tables = [pa.Table.from_batches([b]) for b in batches]
        try:
            result = pa.concat_tables(tables)
        except pa.ArrowInvalid:
            # Batches from different file slices may differ slightly (e.g.
            # nullability); let pyarrow unify them.
            result = pa.concat_tables(tables, promote_options="permissive")
    else:
        try:
            schema = table.get_schema_with_meta_fields()
        except Exception as e:
            fail(f"table {uri} returned no rows and its schema is unreadable: {type(e).__name__}: {e}")
        result = schema.empty_table()

    return result


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    import pyarrow as pa
    import pyarrow.parquet as pq
    from hudi import HudiQueryType, HudiReadOptions, HudiTableBuilder

    uri = table_uri(args.table_uri)
    try:
        table = (
            HudiTableBuilder.from_base_uri(uri)
            .with_storage_options(kv_pairs(args.storage_options, "--storage-option"))
            .with_hudi_options(kv_pairs(args.hudi_options, "--hudi-option"))
            .build()
        )
    except Exception as e:  # hudi raises its own error types
        fail(f"cannot open Hudi table {uri}: {type(e).__name__}: {e}")

    if args.queries is not None:
        with open(args.queries) as f:
            queries = json.load(f)
        os.makedirs(args.out_dir, exist_ok=True)
        rows = {}
        for q in queries:
            result = read_query(table, uri, q.get("as_of"), q.get("start"), q.get("end"), q.get("hudi_options"))
            pq.write_table(result, os.path.join(args.out_dir, q["name"] + ".parquet"))
            rows[q["name"]] = result.num_rows
        print(json.dumps({"rows": rows}))
        return 0

    result = read_query(table, uri, args.as_of, args.start, args.end)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    pq.write_table(result, args.out)
    print(json.dumps({"rows": result.num_rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
