#!/usr/bin/python3
"""Reads the remote-write queue on disk (src/push_queue.c's segment format) independently of the exporter.

    push_queue.py scan DIR
        Every *.seg file under DIR (recursively), every record checked (magic, CRC32, lengths); prints one
        JSON object: queued / queued_bytes (records still to send), sent / sent_bytes (records marked sent or
        dropped, still in their segment), bad (regions that do not check), segments, and the timestamps of
        the queued and of the sent records that carry samples (queued_ts, sent_ts), oldest first.

Record: 16-byte header (u32 magic "FXQ1" queued / "FXQ0" sent, u32 CRC32 of the bytes after it, u32 payload
length, u32 parts), then per part a 32-byte header (u8 version, u8 content-type length, u16 0, u32 body
length, u64 series, u64 samples, i64 timestamp ms), the content type and the body; padded to 8 bytes.
"""

import glob
import json
import os
import struct
import sys
import zlib

QUEUED, SENT = 0x31515846, 0x30515846


def parse(buf, off):
    """The record at off: (size, queued, samples, timestamp) or None when it does not check."""
    if len(buf) - off < 16:
        return None
    magic, crc, payload, parts = struct.unpack_from("<IIII", buf, off)
    if magic not in (QUEUED, SENT) or payload > len(buf) - off - 16 or not 1 <= parts <= 2:
        return None
    if zlib.crc32(buf[off + 8:off + 16 + payload]) != crc:
        return None
    p, end = off + 16, off + 16 + payload
    samples, stamp = 0, None
    for i in range(parts):
        if end - p < 32:
            return None
        version, type_len, _, body_len, _series, n_samples, ts = struct.unpack_from("<BBHIQQq", buf, p)
        if version not in (1, 2) or end - p - 32 < type_len + body_len:
            return None
        if i == 0:
            samples, stamp = n_samples, ts
        p += 32 + type_len + body_len
    if p != end:
        return None
    return (16 + payload + 7) // 8 * 8, magic == QUEUED, samples, stamp


def scan(directory):
    out = {"queued": 0, "queued_bytes": 0, "sent": 0, "sent_bytes": 0, "bad": 0, "segments": 0,
           "queued_ts": [], "sent_ts": []}
    for path in sorted(glob.glob(os.path.join(directory, "**", "*.seg"), recursive=True)):
        out["segments"] += 1
        buf = open(path, "rb").read()
        off = 0
        while off < len(buf):
            record = parse(buf, off)
            if record is None:
                out["bad"] += 1
                off += 8
                while off < len(buf) and parse(buf, off) is None:
                    off += 8
                continue
            size, queued, samples, stamp = record
            kind = "queued" if queued else "sent"
            out[kind] += 1
            out[kind + "_bytes"] += size
            if samples:
                out[kind + "_ts"].append(stamp)
            off += size
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] != "scan":
        raise SystemExit(__doc__)
    print(json.dumps(scan(sys.argv[2])))


if __name__ == "__main__":
    main()
