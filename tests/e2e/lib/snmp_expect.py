#!/usr/bin/python3
"""Helpers of tests/e2e/snmp_interfaces.sh.

    snmp_expect.py agent DIR
        Reads DIR/walk-{1,18,15}.txt (snmpwalk -On -Oq of ifName, ifAlias, ifHighSpeed) and prints
        {"<ifindex>": {"name", "description", "speed"}} (speed in bits per second) for the interfaces with
        a name: what the exporter must publish.
    snmp_expect.py chunk AGENT_JSON K LOCAL_ASN
        Writes to stdout the messages (separated by 0x1e) of chunk K: for router-v2c and router-v3, one
        transmit record per interface of the agent (iface_in = it, iface_out = the next), bytes 1000 (K+1) + i.
    snmp_expect.py total AGENT_JSON FIRST LAST
        Prints the flow_transmit_bytes_total of one router over chunks FIRST..LAST-1.
    snmp_expect.py names BODY AGENT_JSON HOSTNAME
        Exit 0 when BODY's flow_interface_info and flow_interface_speed_bps for HOSTNAME are exactly the
        agent's interfaces; else prints both and exits 1.
    snmp_expect.py inline BODY AGENT_JSON HOSTNAME
        Exit 0 when every flow_transmit_bytes_total series of HOSTNAME in BODY carries the agent's names
        inline: iface_in_name, iface_out_name and iface_in_description (absent when the ifAlias is empty);
        else prints the first difference and exits 1.
"""
import json
import re
import sys


def column(path):
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            oid, _, value = line.rstrip("\n").partition(" ")
            value = value.strip()
            if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
                value = value[1:-1]
            out[int(oid.rsplit(".", 1)[1])] = value
    return out


def cmd_agent(tmp):
    names, aliases, speeds = (column("%s/walk-%d.txt" % (tmp, n)) for n in (1, 18, 15))
    ifaces = {str(i): {"name": n, "description": aliases.get(i, ""),
                       "speed": int(speeds[i]) * 1000000 if i in speeds else None}
              for i, n in sorted(names.items()) if n}
    json.dump(ifaces, sys.stdout, indent=1, sort_keys=True)
    return 0


def ifaces_of(agent_json):
    with open(agent_json, encoding="utf-8") as f:
        return sorted(int(i) for i in json.load(f))


def cmd_chunk(agent_json, k, local):
    ifaces = ifaces_of(agent_json)
    records = []
    for host in ("router-v2c", "router-v3"):
        for n, i in enumerate(ifaces):
            records.append(json.dumps({"event_type": "purge", "label": host, "peer_ip_src": "127.0.0.1",
                                       "as_src": int(local), "as_dst": 15169, "iface_in": i,
                                       "iface_out": ifaces[(n + 1) % len(ifaces)], "packets": 1,
                                       "bytes": 1000 * (int(k) + 1) + i}))
    sys.stdout.buffer.write(b"\x1e".join(r.encode() for r in records))
    return 0


def cmd_total(agent_json, first, last):
    ifaces = ifaces_of(agent_json)
    print(sum(1000 * (k + 1) + i for k in range(int(first), int(last)) for i in ifaces))
    return 0


def cmd_names(body, agent_json, host):
    with open(agent_json, encoding="utf-8") as f:
        want = json.load(f)
    got = {}
    with open(body, encoding="utf-8") as f:
        for line in f:
            m = re.match(r'(flow_interface_info|flow_interface_speed_bps)\{(.*)\} (\S+)$', line.strip())
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            if labels.get("hostname") != host:
                continue
            entry = got.setdefault(labels["ifindex"], {"name": None, "description": "", "speed": None})
            if m.group(1) == "flow_interface_info":
                entry["name"], entry["description"] = labels["name"], labels.get("description", "")
            else:
                entry["speed"] = int(m.group(3))
    if got != want:
        print("got  %s\nwant %s" % (json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True)))
        return 1
    return 0


def cmd_inline(body, agent_json, host):
    with open(agent_json, encoding="utf-8") as f:
        agent = json.load(f)
    seen = 0
    with open(body, encoding="utf-8") as f:
        for line in f:
            m = re.match(r'flow_transmit_bytes_total\{(.*)\} (\S+)$', line.strip())
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
            if labels.get("hostname") != host:
                continue
            want = {}
            for side in ("in", "out"):
                entry = agent.get(labels.get("iface_" + side, ""))
                if entry:
                    want["iface_%s_name" % side] = entry["name"]
                    if side == "in" and entry["description"]:
                        want["iface_in_description"] = entry["description"]
            got = {k: v for k, v in labels.items() if k.endswith(("_name", "_description")) and k.startswith("iface_")}
            if got != want:
                print("%s\ngot  %s\nwant %s" % (line.strip(), json.dumps(got, sort_keys=True), json.dumps(want, sort_keys=True)))
                return 1
            seen += 1
    return 0 if seen else 1


def main():
    commands = {"agent": cmd_agent, "chunk": cmd_chunk, "total": cmd_total, "names": cmd_names,
                "inline": cmd_inline}
    return commands[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
