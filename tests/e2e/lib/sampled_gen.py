#!/usr/bin/python3
"""Sampled flow exports for pmacct's collectors, built here byte by byte (no capture carries a rate).

    sampled_gen.py sflow PORT AGENT RATE      sFlow v5 from AGENT: two flow samples with sampling_rate
                                               RATE, each one raw Ethernet/IPv4/UDP header record
    sampled_gen.py netflow9 PORT SOURCE RATE  NetFlow v9 from SOURCE: a data template with two flows and an
                                               options template (scope system) with SAMPLING_INTERVAL RATE
    sampled_gen.py ipfix PORT SOURCE RATE      IPFIX from SOURCE: the same, the options scoped by
                                               exportingProcessId, samplingInterval (IE 34)

Each datagram goes to 127.0.0.1:PORT from SOURCE (a loopback address). The flows are
10.1.0.5 -> 192.0.2.10 and back (AS 64501 <-> AS 64496 in deploy/pmacct/networks.lst), interfaces 3 and 4.
pmacct 1.7.7 publishes sampling_rate RATE for them, or 1 with bytes and packets multiplied by RATE when
*_renormalize is true (checked by tests/e2e/sampling_pmacct.sh, not assumed).
"""
import socket
import struct
import sys

FLOWS = [("10.1.0.5", "192.0.2.10", 3, 4), ("192.0.2.10", "10.1.0.5", 4, 3)]


def ipv4(text):
    return socket.inet_aton(text)


def frame_header(src, dst, frame_len):
    eth = bytes.fromhex("001122334455" "66778899aabb" "0800")
    ip_len = frame_len - 14
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 1, 0, 64, 17, 0, ipv4(src), ipv4(dst))
    return eth + ip + struct.pack("!HHHH", 1000, 2000, ip_len - 20, 0)


def sflow(agent, rate, seq=1):
    samples = b""
    for i, (src, dst, iface_in, iface_out) in enumerate(FLOWS):
        frame_len = 1000 if i == 0 else 600
        header = frame_header(src, dst, frame_len)
        padded = header + b"\0" * (-len(header) % 4)
        # raw packet header record: protocol 1 (Ethernet), frame length, stripped 4 (FCS), header length
        record = struct.pack("!IIII", 1, frame_len, 4, len(header)) + padded
        record = struct.pack("!II", 1, len(record)) + record
        body = struct.pack("!IIIIIIII", seq * 100 + i, iface_in, rate, rate * (i + 1), 0, iface_in, iface_out, 1)
        samples += struct.pack("!II", 1, len(body + record)) + body + record
    return struct.pack("!II4sIIII", 5, 1, ipv4(agent), 0, seq, 1000, len(FLOWS)) + samples


def flowsets(sets):
    body = b""
    for set_id, content in sets:
        content += b"\0" * (-(len(content) + 4) % 4)
        body += struct.pack("!HH", set_id, len(content) + 4) + content
    return body


def netflow(rate, ipfix, seq=1):
    fields = [(8, 4), (12, 4), (1, 8), (2, 8), (10, 4), (14, 4)]  # src, dst, bytes, packets, in, out
    template = struct.pack("!HH", 256, len(fields)) + b"".join(struct.pack("!HH", *f) for f in fields)
    counters = [(100000, 70), (5000, 9)]
    data = b"".join(struct.pack("!4s4sQQII", ipv4(s), ipv4(d), b, p, i, o)
                    for (s, d, i, o), (b, p) in zip(FLOWS, counters))
    if ipfix:
        # options template 258: scope exportingProcessId (144), samplingInterval (34), samplingAlgorithm (35)
        options = struct.pack("!HHHHHHHHH", 258, 3, 1, 144, 4, 34, 4, 35, 1)
        sets = [(2, template), (3, options), (258, struct.pack("!IIB", 0, rate, 1)), (256, data)]
        body = flowsets(sets)
        return struct.pack("!HHIII", 10, 16 + len(body), 1000000, seq, 0) + body
    # options template 257: scope system (1, 4 bytes), SAMPLING_INTERVAL (34), SAMPLING_ALGORITHM (35)
    options = struct.pack("!HHHHHHHHH", 257, 4, 8, 1, 4, 34, 4, 35, 1)
    sets = [(0, template), (1, options), (257, struct.pack("!IIB", 0, rate, 1)), (256, data)]
    return struct.pack("!HHIIII", 9, len(sets), 1000, 1000000, seq, 0) + flowsets(sets)


def main():
    kind, port, source, rate = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    datagram = sflow(source, rate) if kind == "sflow" else netflow(rate, kind == "ipfix")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.sendto(datagram, ("127.0.0.1", port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
