#!/usr/bin/env python3
"""Decode every Hudi `.cdc` log file under a table, independently of inlet.

Usage: cdc_read.py TABLE_DIR

Walks TABLE_DIR (skipping .hoodie/), parses each `*.cdc` file as Hudi's log format
(`#HUDI#` magic, block length, format version, block type, header, content,
footer, total length; integers big-endian), and decodes each CDC data block
(type 6; content version 3: record count, then length-prefixed Avro datums) with
fastavro against the Avro schema of the block's SCHEMA header. Prints JSON lines,
one per record: {"file", "instant" (INSTANT_TIME header), "op", "ts_ms",
"before", "after"}; bytes as hex, decimals as strings. Any malformed byte is an
error (exit 1).
"""

from __future__ import annotations

import decimal
import io
import json
import os
import struct
import sys

MAGIC = b"#HUDI#"
CDC_DATA_BLOCK = 6
# HoodieLogBlock.HeaderMetadataType ordinals.
HEADER_KEYS = {0: "INSTANT_TIME", 1: "TARGET_INSTANT_TIME", 2: "SCHEMA", 3: "COMMAND_BLOCK_TYPE"}


class Reader:
    def __init__(self, data: bytes, where: str):
        self.data, self.pos, self.where = data, 0, where

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.where}: {n} bytes wanted at {self.pos}, file ends")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def i64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def metadata(self) -> dict:
        out = {}
        for _ in range(self.i32()):
            key = self.i32()
            out[HEADER_KEYS.get(key, str(key))] = self.take(self.i32()).decode("utf-8")
        return out


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def read_file(path: str, rel: str, out: list) -> None:
    import fastavro

    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data, rel)
    while r.pos < len(data):
        start = r.pos
        if r.take(6) != MAGIC:
            raise ValueError(f"{rel}: no block magic at {start}")
        r.i64()  # block length
        if r.i32() != 1:
            raise ValueError(f"{rel}: log format version is not 1")
        block_type = r.i32()
        header = r.metadata()
        content = Reader(r.take(r.i64()), rel)
        r.metadata()  # footer
        length = r.pos - start
        if r.i64() != length:
            raise ValueError(f"{rel}: total block length disagrees at {start}")
        if block_type != CDC_DATA_BLOCK:
            raise ValueError(f"{rel}: block type {block_type} in a .cdc file")
        schema = fastavro.parse_schema(json.loads(header["SCHEMA"]))
        if content.i32() != 3:
            raise ValueError(f"{rel}: content version is not 3")
        for _ in range(content.i32()):
            datum = content.take(content.i32())
            buffer = io.BytesIO(datum)
            record = fastavro.schemaless_reader(buffer, schema, None)
            if buffer.tell() != len(datum):
                raise ValueError(f"{rel}: a datum longer than its record")
            out.append({"file": rel, "instant": header.get("INSTANT_TIME"), **plain(record)})
        if content.pos != len(content.data):
            raise ValueError(f"{rel}: bytes after the last record")


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(argv[0])
    records: list = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == root and ".hoodie" in dirnames:
            dirnames.remove(".hoodie")
        for name in sorted(filenames):
            if name.endswith(".cdc"):
                path = os.path.join(dirpath, name)
                read_file(path, os.path.relpath(path, root), records)
    for record in records:
        print(json.dumps(record, sort_keys=True, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
