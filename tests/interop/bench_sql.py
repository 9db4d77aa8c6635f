"""The peers of scripts/bench-sql: the same two queries over the same lake table, answered by
DuckDB (reading the table's base files with read_parquet: the copy-on-write table's are its
whole latest state) or by hudi-rs (its DataFusion-free read path, `HudiTable.read`, then
pyarrow compute).

    bench_sql.py TABLE_DIR duckdb|hudi aggregate|point KEY [--runs N]

- aggregate: per status, the row count and the sum of amount (rounded to cents);
- point: id, region, status and amount of the row whose id is KEY.

Each query runs N times (default 3) in this process; prints one JSON line: the median seconds,
the result rows (lists), the process's peak resident memory (`peak_rss_kib`, getrusage).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def duckdb_query(table_dir: str, query: str, key: int):
    import duckdb

    files = os.path.join(table_dir, "**", "*.parquet")
    source = f"read_parquet('{files}', hive_partitioning = false)"
    if query == "aggregate":
        sql = (
            f"SELECT status, count(*) AS n, round(sum(amount), 2) AS total FROM {source} "
            "GROUP BY status ORDER BY status"
        )
    else:
        sql = f"SELECT id, region, status, amount FROM {source} WHERE id = {key}"
    con = duckdb.connect()
    rows = con.execute(sql).fetchall()
    con.close()
    return [list(r) for r in rows]


def hudi_query(table_dir: str, query: str, key: int):
    import pyarrow as pa
    import pyarrow.compute as pc
    from hudi import HudiTableBuilder

    table = HudiTableBuilder.from_base_uri(table_dir).build()
    batches = [b for b in table.read() if b is not None]
    data = pa.Table.from_batches(batches)
    if query == "aggregate":
        grouped = data.group_by("status").aggregate([("id", "count"), ("amount", "sum")])
        rows = sorted(
            [s, n, round(t, 2)]
            for s, n, t in zip(
                grouped["status"].to_pylist(),
                grouped["id_count"].to_pylist(),
                grouped["amount_sum"].to_pylist(),
            )
        )
        return rows
    hit = data.filter(pc.equal(data["id"], key)).select(["id", "region", "status", "amount"])
    return [list(r.values()) for r in hit.to_pylist()]


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("table_dir")
    parser.add_argument("engine", choices=["duckdb", "hudi"])
    parser.add_argument("query", choices=["aggregate", "point"])
    parser.add_argument("key", type=int)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    run = duckdb_query if args.engine == "duckdb" else hudi_query
    times = []
    result = None
    for _ in range(args.runs):
        start = time.perf_counter()
        result = run(args.table_dir, args.query, args.key)
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "secs": statistics.median(times),
                "runs": times,
                "result": result,
                "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
