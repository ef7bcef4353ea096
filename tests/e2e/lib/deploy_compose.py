#!/usr/bin/python3
"""deploy/docker-compose.yml, as a compose tool resolved it (`docker-compose config` output), checked and
turned into commands that run here.

    deploy_compose.py check RESOLVED.yml HELP_DIR
        Every service command uses only flags its program accepts: HELP_DIR/<service>.txt holds the
        `--help` of the program the service runs (flow-exporter, prometheus, prometheus-pushgateway);
        services without one (grafana, kafka) are skipped. Also checks what the stack needs: the exporter
        built from deploy/Dockerfile with 9590 published, Prometheus receiving remote write and mounting
        the rules, Grafana mounting the dashboard where its provider looks, the Kafka broker behind a
        profile, and the exporter's default input the embedded demo (an empty --brokers).

    deploy_compose.py command RESOLVED.yml SERVICE HOST=ADDR...
        Prints the service's command, one argument a line, with each stack address HOST (e.g.
        prometheus:9090) replaced by ADDR (e.g. 127.0.0.1:40000).
"""

import os
import re
import sys

import yaml

FLAG = re.compile(r"^\s*(?:-\w, )?--(?:\[no-\])?([a-z0-9][a-z0-9._-]*)", re.M)


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def accepted_flags(help_text):
    flags = set(FLAG.findall(help_text))
    # kingpin (Prometheus) lists boolean flags as --[no-]name; both spellings are valid.
    flags |= {"no-" + f for f in flags}
    return flags


def used_flags(command):
    if isinstance(command, str):
        command = command.split()
    out = []
    for argument in command or []:
        if argument.startswith("-"):
            out.append(argument.lstrip("-").split("=", 1)[0])
    return out


def check(resolved_path, help_dir):
    compose = load(resolved_path)
    services = compose.get("services", {})
    problems = []
    for name, service in services.items():
        help_file = os.path.join(help_dir, f"{name}.txt")
        if not os.path.exists(help_file):
            print(f"  {name}: no local program to check its flags against ({service.get('image')})")
            continue
        with open(help_file, encoding="utf-8") as f:
            accepted = accepted_flags(f.read())
        used = used_flags(service.get("command"))
        unknown = [flag for flag in used if flag not in accepted]
        if unknown:
            problems.append(f"service {name}: flags its program does not accept: {unknown}")
        print(f"  {name}: {len(used)} flags, all accepted" if not unknown else f"  {name}: unknown {unknown}")

    exporter = services.get("flow-exporter", {})
    build = exporter.get("build", {})
    if not str(build.get("dockerfile", "")).endswith("deploy/Dockerfile"):
        problems.append("flow-exporter is not built from deploy/Dockerfile")
    if not any(str(p.get("target") if isinstance(p, dict) else p).endswith("9590") for p in exporter.get("ports", [])):
        problems.append("flow-exporter does not publish 9590")
    command = exporter.get("command") or []
    if "--brokers=" not in command:
        problems.append("flow-exporter's default input is not the embedded demo (--brokers= empty)")
    for wanted in ("--remote-write-url=http://prometheus:9090/api/v1/write", "--pushgateway-url=http://pushgateway:9091"):
        if wanted not in command:
            problems.append(f"flow-exporter does not push: {wanted} missing")

    prometheus = services.get("prometheus", {})
    if "--web.enable-remote-write-receiver" not in (prometheus.get("command") or []):
        problems.append("prometheus does not receive remote write")
    mounts = [v.get("target") if isinstance(v, dict) else str(v).split(":")[1] for v in prometheus.get("volumes", [])]
    for target in ("/etc/prometheus/prometheus.yml", "/etc/prometheus/flow-exporter.rules.yml"):
        if target not in mounts:
            problems.append(f"prometheus does not mount {target}")

    grafana = services.get("grafana", {})
    volumes = [str(v) if not isinstance(v, dict) else f"{v.get('source')}:{v.get('target')}" for v in grafana.get("volumes", [])]
    sources = {v.split(":")[1]: v.split(":")[0] for v in volumes if ":" in v}
    provider_dir = sources.get("/etc/grafana/provisioning/dashboards")
    datasource_dir = sources.get("/etc/grafana/provisioning/datasources")
    if not provider_dir or not datasource_dir:
        problems.append("grafana does not mount the provisioning directories")
    else:
        providers = [p for f in os.listdir(provider_dir) if f.endswith(".yml") for p in load(os.path.join(provider_dir, f))["providers"]]
        paths = [p["options"]["path"] for p in providers]
        if not any(os.path.basename(s) == "flow-exporter.json" and t.startswith(tuple(paths)) for t, s in sources.items()):
            problems.append(f"the dashboard is not mounted under a provider path {paths}")
        datasources = [d for f in os.listdir(datasource_dir) if f.endswith(".yml") for d in load(os.path.join(datasource_dir, f))["datasources"]]
        if not any(d["type"] == "prometheus" and d["url"] == "http://prometheus:9090" for d in datasources):
            problems.append("no Prometheus data source pointing at the stack's prometheus")
    if "pushgateway" not in services:
        problems.append("no pushgateway service")
    kafka = services.get("kafka")
    if not kafka or "kafka" not in (kafka.get("profiles") or []):
        problems.append("no Kafka broker behind the kafka profile")

    for problem in problems:
        print(f"compose: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"compose: {len(services)} services as the stack needs them")


def command(resolved_path, service, mappings):
    compose = load(resolved_path)
    replace = dict(m.split("=", 1) for m in mappings)
    for argument in compose["services"][service].get("command") or []:
        for host, address in replace.items():
            argument = argument.replace(host, address)
        print(argument)


def main(argv):
    if len(argv) == 3 and argv[0] == "check":
        check(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "command":
        command(argv[1], argv[2], argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
