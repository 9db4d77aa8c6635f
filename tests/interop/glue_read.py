#!/usr/bin/env python3
"""Read what a Glue Data Catalog holds for one database with boto3 (an independent client).

Usage:
  glue_read.py ENDPOINT REGION DATABASE [ACCESS_KEY SECRET_KEY]

Prints one JSON object: {"tables": {NAME: <GetTable's Table, dates dropped>},
"partitions": {NAME: [{"Values": [...], "Location": L}, ...]}}. Credentials come from
the arguments, else from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import boto3

    endpoint, region, database = sys.argv[1:4]
    keys = {}
    if len(sys.argv) > 5:
        keys = {"aws_access_key_id": sys.argv[4], "aws_secret_access_key": sys.argv[5]}
    glue = boto3.client("glue", endpoint_url=endpoint, region_name=region, **keys)
    tables = {}
    partitions = {}
    for page in glue.get_paginator("get_tables").paginate(DatabaseName=database):
        for table in page["TableList"]:
            name = table["Name"]
            tables[name] = {k: v for k, v in table.items() if not hasattr(v, "isoformat")}
            found = []
            for ppage in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=name):
                for p in ppage["Partitions"]:
                    found.append({"Values": p["Values"], "Location": p["StorageDescriptor"]["Location"]})
            partitions[name] = sorted(found, key=lambda p: p["Values"])
    print(json.dumps({"tables": tables, "partitions": partitions}, default=str))


if __name__ == "__main__":
    main()
