#!/usr/bin/python3
"""Abusive HTTP clients for tests/e2e/web_abuse.sh, all on loopback, for a fixed time.

    abuse.py PORT SECONDS OUT.json

- idle: 1,000 connections that never send a byte, from 127.0.0.2..127.0.0.9 (125 per address); one that
  the server closes is opened again (at most once a second);
- slow: 200 connections that send a request line and then one header byte a second, never ending the
  head, from 127.0.0.12..127.0.0.19 (25 per address); reopened likewise when closed;
- flood: three clients from 127.0.0.20..127.0.0.22 sending, over and over, random bytes, a request with a
  64 KB header, and a request with an unknown method, each on a new connection.

Writes what it saw: how often each kind was closed by the server, the status of each flood answer.
"""
import json
import os
import random
import resource
import socket
import sys
import threading
import time

PORT, SECONDS, OUT = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
DEADLINE = time.monotonic() + SECONDS
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
lock = threading.Lock()
seen = {"idle_closed": 0, "slow_closed": 0, "idle_opened": 0, "slow_opened": 0, "flood": {}}


def count(key, n=1):
    with lock:
        seen[key] += n


def connect(source):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", PORT))
    except OSError:
        s.close()
        return None
    s.setblocking(False)
    return s


def closed_by_server(s):
    try:
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def holders(kind, n, sources, first_bytes, trickle):
    """n connections spread over sources; reopened (at most once a second each) when the server closes them."""
    conns = [None] * n
    reopened = [0.0] * n
    while time.monotonic() < DEADLINE:
        now = time.monotonic()
        for i in range(n):
            s = conns[i]
            if s is not None and closed_by_server(s):
                s.close()
                conns[i] = s = None
                count(kind + "_closed")
            if s is None and now - reopened[i] >= 1.0:
                reopened[i] = now
                s = conns[i] = connect(sources[i % len(sources)])
                if s is not None:
                    count(kind + "_opened")
                    if first_bytes:
                        try:
                            s.send(first_bytes)
                        except OSError:
                            pass
            elif s is not None and trickle:
                try:
                    s.send(trickle)
                except OSError:
                    pass
        time.sleep(1.0)
    for s in conns:
        if s is not None:
            s.close()


def answer_status(s):
    data = b""
    try:
        while b"\r\n" not in data and len(data) < 4096:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if data.startswith(b"HTTP/1."):
        return data.split(b" ", 2)[1].decode()
    return "closed"


def flood(source, rng):
    kinds = ["random", "big_header", "unknown_method"]
    n = 0
    while time.monotonic() < DEADLINE:
        kind = kinds[n % 3]
        n += 1
        s = socket.socket()
        s.bind((source, 0))
        s.settimeout(3)
        try:
            s.connect(("127.0.0.1", PORT))
            if kind == "random":
                s.sendall(bytes(rng.getrandbits(8) for _ in range(2048)))
            elif kind == "big_header":
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
            else:
                s.sendall(b"BREW /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status = answer_status(s)
        except OSError as e:
            status = "error:" + type(e).__name__
        finally:
            s.close()
        key = kind + ":" + status
        with lock:
            seen["flood"][key] = seen["flood"].get(key, 0) + 1
        time.sleep(0.01)


threads = [
    threading.Thread(target=holders, args=("idle", 1000, ["127.0.0.%d" % a for a in range(2, 10)], b"", b"")),
    threading.Thread(target=holders, args=("slow", 200, ["127.0.0.%d" % a for a in range(12, 20)],
                                           b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"a")),
]
threads += [threading.Thread(target=flood, args=("127.0.0.%d" % a, random.Random(a))) for a in (20, 21, 22)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump(seen, open(OUT, "w"), indent=1, sort_keys=True)
