#!/usr/bin/env python3
"""Check every Parquet base file of a Hudi table with two independent readers.

Usage: check_base_files.py TABLE_DIR

Finds every *.parquet file under TABLE_DIR (skipping .hoodie/), reads each one
fully with pyarrow and with duckdb (count(*) and a full SELECT * fetch into
Arrow), checks
that all row counts agree and prints JSON: {"files": {"relpath": rows, ...}}.
On any failure, prints the problems to stderr and exits non-zero.
"""

from __future__ import annotations

import json
import os
import sys


# Read the file alone: no columns inferred from hive-style partition folders.
COUNT_SQL = "SELECT count(*) FROM read_parquet(?, hive_partitioning = false)"
SELECT_SQL = "SELECT * FROM read_parquet(?, hive_partitioning = false)"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(argv[0])
    if not os.path.isdir(root):
        print(f"check_base_files.py: error: {root} is not a directory", file=sys.stderr)
        return 1

    import duckdb
    import pyarrow.parquet as pq

    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and ".hoodie" in dirnames:
            dirnames.remove(".hoodie")  # timeline and metadata table, not base files
        for name in filenames:
            if name.endswith(".parquet"):
                paths.append(os.path.join(dirpath, name))
    paths.sort()

    con = duckdb.connect()
    files: dict[str, int] = {}
    errors: list[str] = []
    for path in paths:
        rel = os.path.relpath(path, root)
        try:
            arrow_rows = pq.read_table(path, partitioning=None).num_rows
        except Exception as e:
            errors.append(f"{rel}: pyarrow cannot read it: {type(e).__name__}: {e}")
            continue
        try:
            (duck_count,) = con.execute(COUNT_SQL, [path]).fetchone()
            duck_rows = con.execute(SELECT_SQL, [path]).fetch_arrow_table().num_rows
        except Exception as e:
            errors.append(f"{rel}: duckdb cannot read it: {type(e).__name__}: {e}")
            continue
        if not (arrow_rows == duck_count == duck_rows):
            errors.append(
                f"{rel}: row counts disagree: pyarrow {arrow_rows}, "
                f"duckdb count(*) {duck_count}, duckdb SELECT * {duck_rows}"
            )
            continue
        files[rel] = arrow_rows

    if errors:
        for err in errors:
            print(f"check_base_files.py: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"files": files}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
