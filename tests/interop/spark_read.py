#!/usr/bin/env python3
"""Read every base file of a table with Apache Spark's own Parquet reader (PyPI `pyspark`,
local mode, bound to 127.0.0.1) and print one JSON line per file:
{"file": relpath, "rows": N, "schema": "<Spark simpleString>", "json": [row as JSON, ...]}.

Usage: spark_read.py TABLE_DIR
"""

import glob
import json
import os
import sys


def main(argv):
    if len(argv) != 1:
        print("usage: spark_read.py TABLE_DIR", file=sys.stderr)
        return 2
    base = os.path.abspath(argv[0])
    files = sorted(
        f for f in glob.glob(os.path.join(base, "**", "*.parquet"), recursive=True)
        if os.sep + ".hoodie" + os.sep not in f
    )
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("inlet-interop")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        for f in files:
            df = spark.read.parquet(f)
            rows = df.toJSON().collect()
            print(json.dumps({
                "file": os.path.relpath(f, base),
                "rows": len(rows),
                "schema": df.schema.simpleString(),
                "json": rows,
            }))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
