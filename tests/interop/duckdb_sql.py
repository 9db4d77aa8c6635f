#!/usr/bin/env python3
"""Run one SQL query in DuckDB over Parquet files standing for tables, and write
the result as ONE Parquet file: the independent SQL engine `inlet sql` is
checked against (the files are what hudi-rs reads from the same lake tables).

Usage:
  duckdb_sql.py --table SCHEMA.TABLE=FILE.parquet [...] --query SQL --out OUT.parquet

Prints one JSON line: {"rows": N}.
"""

from __future__ import annotations

import argparse
import json

import duckdb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", action="append", default=[], metavar="SCHEMA.TABLE=FILE")
    p.add_argument("--query", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    con = duckdb.connect()
    for spec in args.table:
        name, path = spec.split("=", 1)
        schema, table = name.split(".", 1)
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f"""CREATE VIEW "{schema}"."{table}" AS SELECT * FROM read_parquet('{path}')""")
    result = con.execute(args.query).arrow()
    import pyarrow.parquet as pq

    if hasattr(result, "read_all"):
        result = result.read_all()
    pq.write_table(result, args.out)
    print(json.dumps({"rows": result.num_rows}))


if __name__ == "__main__":
    main()
