#!/usr/bin/python3
"""A remote-write 2.0 (and 1.0) receiver built on Google's protobuf runtime, independent of the project's
encoder: the Python modules are generated at start by protoc (Debian protobuf-compiler) from proto/
(remote.proto, types.proto and io/prometheus/write/v2/types.proto, the reference schemas' names and
numbers) into a temporary directory, and decoded by Debian's python3-protobuf.

  rw2_receiver.py serve PROTO_DIR PORT_FILE LOG      listens on 127.0.0.1 (a free port, written to PORT_FILE)
  rw2_receiver.py check URL PATH EXPECTED.prom       the last values stored for PATH equal EXPECTED exactly

Every v2 request (X-Prometheus-Remote-Write-Version: 2.0.0) is checked against remote write 2.0-rc.4:
the headers (Content-Type application/x-protobuf;proto=io.prometheus.write.v2.Request, Content-Encoding
snappy, a User-Agent); symbols[0] == "", every symbol once and used; every reference inside the table;
labels in pairs, names sorted and unique, no empty name or value, __name__ present; metadata on every
series (type counter for the flow families, counter or gauge for the others, a help text); one sample a
series, timestamps strictly increasing per series across requests, start_timestamp set for the flow series
and the same in every request; stale markers (NaN 0x7ff0000000000002) only as a series' last sample.
v1 requests are checked for their own headers and decoded too (after a fallback).

What the answer is depends on the path (one path per exporter endpoint):
  /ok          2.0 stored and answered 204 with the X-Prometheus-Remote-Write-*-Written headers
  /415         2.0 answered 415 (not stored); 1.0 stored, 204
  /nowritten   2.0 answered 204 with no Written header, not stored (a 1.0 receiver ignoring the content
               type); 1.0 stored, 204
  /partial     2.0 stored, 204, Samples-Written one less than the samples received
GET /state/<path> gives {"v1": n, "v2": n, "violations": [...], "series": n, "stale": n, "values": {...}}.
LOG gets one line a request: {"path", "v2", "bytes" (the body as received), "ms" (arrival), "status",
"samples" (decoded)}.
"""
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import metrics  # noqa: E402

STALE = 0x7FF0000000000002
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
PATHS = ("/ok", "/415", "/nowritten", "/partial")


def unsnappy(data):
    """Snappy block format (the whole of it: literals and the three copy forms)."""
    length, shift, pos = 0, 0, 0
    while True:
        b = data[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            n += 1
            out += data[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if offset == 0 or offset > len(out):
            raise ValueError("bad snappy offset")
        for _ in range(n):
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError("snappy length %d, header says %d" % (len(out), length))
    return bytes(out)


def load_modules(proto_dir):
    out = tempfile.mkdtemp(prefix="rw2-proto-")
    subprocess.run(["protoc", "-I" + proto_dir, "--python_out=" + out, "remote.proto", "types.proto",
                    "io/prometheus/write/v2/types.proto"], check=True)
    sys.path.insert(0, out)
    import remote_pb2  # noqa: E402
    # Loaded by path: its package directory "io" would be taken for the standard library's io.
    spec = importlib.util.spec_from_file_location("rw2_types_pb2",
                                                  os.path.join(out, "io/prometheus/write/v2/types_pb2.py"))
    v2 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(v2)
    return remote_pb2, v2


class Endpoint:
    def __init__(self):
        self.v1 = self.v2 = 0
        self.violations = []
        self.last = {}    # key -> (timestamp, bits)
        self.start = {}   # key -> start_timestamp (v2)

    def bad(self, why):
        if len(self.violations) < 50:
            self.violations.append(why)

    def sample(self, key, timestamp, value, start=None):
        bits = struct.unpack("<Q", struct.pack("<d", value))[0]
        previous = self.last.get(key)
        if previous and timestamp <= previous[0]:
            self.bad("timestamp not increasing for %s" % (key,))
        if previous and previous[1] == STALE:
            self.start.pop(key, None)  # a series that comes back after its marker is a new one
        if bits == STALE and previous is None:
            self.bad("a stale marker for a series never seen: %s" % (key,))
        self.last[key] = (timestamp, bits)
        if start is not None:
            if key[0].startswith("flow_exporter_"):
                return
            if start <= 0:
                self.bad("no start_timestamp on %s" % (key,))
            elif self.start.setdefault(key, start) != start:
                self.bad("start_timestamp of %s changed: %d then %d" % (key, self.start[key], start))

    def state(self):
        values = {}
        stale = 0
        for (name, labels), (_, bits) in self.last.items():
            if name.startswith("flow_exporter_"):
                continue
            if bits == STALE:
                stale += 1
                continue
            value = struct.unpack("<d", struct.pack("<Q", bits))[0]
            values[metrics.format_key((name, tuple(kv for kv in labels if kv[0] not in ("job", "instance"))))] = value
        return {"v1": self.v1, "v2": self.v2, "violations": self.violations, "series": len(self.last),
                "stale": stale, "values": values}


def check_v2(endpoint, request, headers):
    if headers.get("Content-Type") != V2_TYPE:
        endpoint.bad("content-type %r" % headers.get("Content-Type"))
    if headers.get("Content-Encoding") != "snappy" or not headers.get("User-Agent"):
        endpoint.bad("content-encoding or user-agent missing")
    symbols = list(request.symbols)
    if not symbols or symbols[0] != "":
        endpoint.bad("symbols[0] is not empty")
    if len(set(symbols)) != len(symbols):
        endpoint.bad("a symbol appears twice")
    used = {0}
    samples = 0
    for series in request.timeseries:
        refs = list(series.labels_refs)
        if len(refs) % 2 or any(r <= 0 or r >= len(symbols) for r in refs):
            endpoint.bad("bad label references %r" % refs)
            continue
        used.update(refs)
        names = [symbols[r] for r in refs[0::2]]
        labels = tuple(zip(names, (symbols[r] for r in refs[1::2])))
        if names != sorted(set(names)):
            endpoint.bad("labels not sorted and unique: %r" % names)
        name = dict(labels).get("__name__")
        if not name:
            endpoint.bad("no __name__")
            continue
        md = series.metadata
        if md.help_ref <= 0 or md.help_ref >= len(symbols) or md.unit_ref >= len(symbols):
            endpoint.bad("metadata references of %s" % name)
        used.update((md.help_ref, md.unit_ref))
        flow = not name.startswith("flow_exporter_")
        if (flow and md.type != 1) or md.type not in (1, 2):
            endpoint.bad("metadata type %d for %s" % (md.type, name))
        if len(series.samples) != 1 or series.histograms or series.exemplars:
            endpoint.bad("not one sample: %s" % name)
            continue
        s = series.samples[0]
        key = (name, tuple(kv for kv in labels if kv[0] != "__name__"))
        endpoint.sample(key, s.timestamp, s.value, s.start_timestamp)
        samples += 1
    if used != set(range(len(symbols))):
        endpoint.bad("%d symbols not used" % (len(symbols) - len(used)))
    return samples


def check_v1(endpoint, request, headers):
    if headers.get("Content-Type") != "application/x-protobuf" or \
            headers.get("X-Prometheus-Remote-Write-Version") != "0.1.0":
        endpoint.bad("1.0 headers: %r %r" % (headers.get("Content-Type"),
                                             headers.get("X-Prometheus-Remote-Write-Version")))
    samples = 0
    for series in request.timeseries:
        labels = [(label.name, label.value) for label in series.labels]
        name = dict(labels).get("__name__", "")
        for s in series.samples:
            endpoint.sample((name, tuple(kv for kv in labels if kv[0] != "__name__")), s.timestamp, s.value)
            samples += 1
    return samples


def make_handler(modules, endpoints, log, lock):
    remote_pb2, v2 = modules

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, headers=()):
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            path = self.path[len("/state"):]
            with lock:
                body = json.dumps(endpoints[path].state()).encode() if path in endpoints else b"{}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            arrived_ms = int(time.time() * 1000)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            path = self.path
            if path not in endpoints:
                return self.answer(404)
            is_v2 = self.headers.get("X-Prometheus-Remote-Write-Version") == "2.0.0"
            with lock:
                status, headers, samples = self.store(endpoints[path], path, is_v2, body)
                log.write(json.dumps({"path": path, "v2": is_v2, "bytes": len(body), "ms": arrived_ms,
                                      "status": status, "samples": samples}) + "\n")
                log.flush()
            self.answer(status, headers)

        def store(self, endpoint, path, is_v2, body):
            """(status, headers, samples decoded) for a request; called with the lock held."""
            if is_v2 and path in ("/415", "/nowritten"):
                return 415 if path == "/415" else 204, (), 0
            samples = 0
            try:
                raw = unsnappy(body)
                if is_v2:
                    request = v2.Request()
                    request.ParseFromString(raw)
                    endpoint.v2 += 1
                    samples = check_v2(endpoint, request, self.headers)
                else:
                    request = remote_pb2.WriteRequest()
                    request.ParseFromString(raw)
                    endpoint.v1 += 1
                    samples = check_v1(endpoint, request, self.headers)
            except Exception as e:  # a body that does not decode is a violation, answered 400
                endpoint.bad("undecodable: %s" % e)
                return 400, (), 0
            if not is_v2:
                return 204, (), samples
            written = samples - 1 if path == "/partial" and samples else samples
            return 204, [("X-Prometheus-Remote-Write-Samples-Written", str(written)),
                         ("X-Prometheus-Remote-Write-Histograms-Written", "0"),
                         ("X-Prometheus-Remote-Write-Exemplars-Written", "0")], samples

    return Handler


def cmd_serve(proto_dir, port_file, log_path):
    modules = load_modules(proto_dir)
    endpoints = {p: Endpoint() for p in PATHS}
    with open(log_path, "a", encoding="utf-8") as log:
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(modules, endpoints, log, threading.Lock()))
        with open(port_file + ".tmp", "w") as f:
            f.write(str(server.server_address[1]))
        os.rename(port_file + ".tmp", port_file)
        server.serve_forever()


def cmd_check(url, path, expected_path):
    state = json.load(urllib.request.urlopen(url + "/state" + path, timeout=10))
    with open(expected_path, encoding="utf-8") as f:
        expected = {metrics.format_key(k): v for k, v in metrics.flow_samples(metrics.parse(f.read())).items()}
    problems = ["violation: " + v for v in state["violations"]]
    got = state["values"]
    for key, value in expected.items():
        if key not in got:
            problems.append("missing %s" % key)
        elif got[key] != float(value):
            problems.append("%s = %r, want %s" % (key, got[key], value))
    problems += ["unexpected %s" % key for key in got if key not in expected]
    print(json.dumps({k: state[k] for k in ("v1", "v2", "series", "stale")}))
    for p in problems[:20]:
        print(p, file=sys.stderr)
    return 1 if problems else 0


def main():
    if sys.argv[1] == "serve":
        cmd_serve(*sys.argv[2:5])
    elif sys.argv[1] == "check":
        sys.exit(cmd_check(*sys.argv[2:5]))


if __name__ == "__main__":
    main()
