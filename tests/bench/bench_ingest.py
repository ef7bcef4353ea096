#!/usr/bin/python3
"""Ingest benchmark: the daemon as its own process against librdkafka's mock cluster, next to the
count-only librdkafka ceiling measured on the same data in the same run.

For each scenario, fx_bench_kafka pre-produces the messages into a mock cluster (and checks that the mock
dropped none). Then, for each run, on the same data and with the same librdkafka settings, one after the
other in an order that rotates from run to run (so that no one always runs first, or right after another):
  1. the ceiling: `fx_bench_kafka ceiling` (one handle, its partitions forwarded to as many count-only
     threads as the daemon has workers, the daemon's prefetch bound: the daemon's own design, see
     fx_bench_kafka.c) in a fresh consumer group; it times itself from its first assignment to the last
     message;
  2. each daemon variant (--variant): `flow-exporter --group=<fresh> --kafka-opt=auto.offset.reset=earliest ...`. The window
     starts when it logs its first partition assignment and ends at the last moment it was busy (summed
     CPU of its counting threads fx-worker-*, or of all its threads if it does not name them,
     /proc/<pid>/task/*/schedstat, sampled every 10 ms) before
     flow_exporter_records_total reached the number of records produced. CPU per record comes from
     /proc/<pid>/stat (utime + stime) over that window, peak RSS from VmHWM: while catching up (read just
     before the first scrape) and with the final scrape.
Reports per run and the median and spread (min-max) over the runs; --json writes everything.

Scrapes happen only at the end (a scrape at 100,000 series is real work that would be charged to ingest).
"""
import argparse
import json
import shlex
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

LOCAL_ASN = 64496
TICK = os.sysconf("SC_CLK_TCK")

# A backlog of ~2 M records each. Messages per partition stay under the mock's ~5 MiB per partition
# (fx_bench_kafka checks it).
SCENARIOS = {
    "small": dict(title="1 record/message, ~100 series", records=1, hosts=5, asns=5, ifaces=2,
                  partitions=160, messages=160 * 12500),
    "large": dict(title="1 record/message, ~100,000 series", records=1, hosts=10, asns=500, ifaces=10,
                  partitions=160, messages=160 * 12500),
    "multi": dict(title="kafka_multi_values, 100 records/message, ~100 series", records=100, hosts=5, asns=5,
                  ifaces=2, partitions=256, messages=256 * 80),
    # Issue 10: a full BGP table's cardinality, one million distinct keys over four hostnames, run with
    # --daemon-arg=--max-series=200000 --daemon-arg=--top-n=100 (held series are then the limit, not the keys).
    "bgp": dict(title="kafka_multi_values, 1,000,000 distinct keys over 4 hostnames", records=100, hosts=4,
                asns=12500, ifaces=10, partitions=256, messages=256 * 80, held="max-series"),
}
SMOKE = dict(title="smoke", records=1, hosts=5, asns=5, ifaces=2, partitions=8, messages=20000)

# The Go program's figures from issue 5 (records/s), for the ratios.
GO_RATE = {"small": 145000, "large": 75000}


CEILING = "ceiling"  # the count-only consumer's turn in a run


def max_series_arg(daemon_args, default):
    for arg in daemon_args:
        if arg.startswith("--max-series="):
            return int(arg.split("=", 1)[1])
    return default


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadClock:
    """The summed run time of a process's threads (only those whose name starts with prefix, when given),
    in ns (schedstat: precise, unlike stat's ticks), for a sampling loop: each thread's schedstat is opened
    once (new threads are looked for every REFRESH_S) and re-read in place. Walking /proc/<pid>/task and
    opening two files per thread every 10 ms took ~0.4 ms of Python a tick, ~4% of a core taken from the
    daemon on two cores and not from the ceiling, which times itself."""

    REFRESH_S = 0.5

    def __init__(self, pid, prefix=None):
        self.pid, self.prefix = pid, prefix
        self.fds = {}  # tid -> fd
        self.gone = 0  # run time of the threads that ended since they were opened, in ns
        self.last = {}  # tid -> last run time read
        self.opened_at = None
        self.refresh()

    def refresh(self):
        self.opened_at = time.monotonic()
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return
        for task in tasks:
            if task in self.fds:
                continue
            try:
                if self.prefix:
                    with open(f"/proc/{self.pid}/task/{task}/comm") as f:
                        if not f.read().startswith(self.prefix):
                            continue
                self.fds[task] = os.open(f"/proc/{self.pid}/task/{task}/schedstat", os.O_RDONLY)
            except (FileNotFoundError, ProcessLookupError):
                pass

    def ns(self):
        """The summed run time, or None once the process is gone."""
        if time.monotonic() - self.opened_at >= self.REFRESH_S:
            self.refresh()
        for task, fd in list(self.fds.items()):
            try:
                self.last[task] = int(os.pread(fd, 64, 0).split()[0])
            except (OSError, IndexError, ValueError):  # the thread ended: keep what it ran
                os.close(fd)
                del self.fds[task]
                self.gone += self.last.pop(task, 0)
        if not self.fds and not os.path.exists(f"/proc/{self.pid}"):
            return None
        return self.gone + sum(self.last.values())

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def has_thread(pid, prefix):
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                if f.read().startswith(prefix):
                    return True
    except (FileNotFoundError, ProcessLookupError):
        pass
    return False


def stat_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    values = {}
    for name in ("flow_exporter_records_total", "flow_exporter_records_counted_total", "flow_exporter_series",
                 "flow_exporter_kafka_fetch_wakeups_total"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        values[name] = float(m.group(1)) if m else None
    return values


class Mock:
    def __init__(self, tools, scenario):
        args = [os.path.join(tools, "fx_bench_kafka"), "mock"]
        for key in ("partitions", "messages", "records", "hosts", "asns", "ifaces"):
            args += [f"--{key}", str(scenario[key])]
        args += ["--local-asn", str(LOCAL_ASN), "--compression", scenario.get("compression", "none")]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.bootstrap = None
        self.info = {}
        for line in self.proc.stdout:
            if line.startswith("BOOTSTRAP "):
                self.bootstrap = line.split()[1]
            elif line.startswith("READY "):
                self.info = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
                break
        if not self.bootstrap or not self.info:
            self.stop()
            raise SystemExit("fx_bench_kafka mock failed (see above)")

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_ceiling(tools, mock, group, consumers, kafka_opts, prefetch_bytes):
    args = [os.path.join(tools, "fx_bench_kafka"), "ceiling", "--brokers", mock.bootstrap, "--group", group,
            "--messages", str(int(mock.info["messages"])), "--consumers", str(consumers),
            "--prefetch-bytes", str(prefetch_bytes)]
    for opt in kafka_opts:
        args += ["--kafka-opt", opt]
    out = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=300, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("CEILING "))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def run_daemon(daemon, mock, group, asn_file, daemon_args, kafka_opts, trace_mock=False, busy_cores=0.3,
               idle_s=0.3):
    port = free_port()
    args = [daemon, f"--brokers={mock.bootstrap}", "--topic=flows", f"--group={group}", f"--asn={LOCAL_ASN}",
            f"--asn-names={asn_file}", f"--addr=127.0.0.1:{port}", "--log-level=info"]
    # "{tmp}" in a daemon flag is a fresh directory per daemon start (--daemon-arg=--state-dir={tmp}: every
    # run starts from a clean state, as its mock cluster does).
    fresh = tempfile.mkdtemp(prefix="fx-bench-state.", dir="/var/tmp")
    args += [f"--kafka-opt={o}" for o in kafka_opts] + [a.replace("{tmp}", fresh) for a in daemon_args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOW_EXPORTER_")}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assigned = threading.Event()
    log_tail = []

    def read_log():
        for line in proc.stderr:
            log_tail.append(line)
            del log_tail[:-20]
            if not assigned.is_set() and re.search(r"assigned \d+ partition", line):
                assigned.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    target = mock.info["records"]
    result = None
    all_clock = counting_clock = mock_clock = None
    try:
        if not assigned.wait(60):
            raise RuntimeError("the daemon was never assigned partitions:\n" + "".join(log_tail))
        # Busy means the counting threads busy (fx-worker-*: a daemon that names its threads), so that the
        # statistics callback's parse every second, on the control thread, does not stretch the window past
        # the last record; a daemon without names is judged by all its threads, as before.
        counting = "fx-worker" if has_thread(proc.pid, "fx-worker") else None
        threshold = 0.1 if counting else busy_cores
        all_clock = ThreadClock(proc.pid)
        counting_clock = ThreadClock(proc.pid, counting) if counting else all_clock
        mock_clock = ThreadClock(mock.proc.pid) if trace_mock else None
        mock_cpu = [mock_clock.ns() if mock_clock else 0]
        t0, cpu0, stat0 = time.monotonic(), all_clock.ns(), stat_cpu_s(proc.pid)
        last = (t0, cpu0)
        last_counting = counting_clock.ns()
        last_busy = (t0, cpu0, stat0)
        trace = []  # (seconds since t0, cores busy: all threads, counting threads, the mock) every 10 ms
        catchup_hwm = None  # VmHWM before the first scrape: the peak of catching up, without a scrape's
        deadline = t0 + 300
        while time.monotonic() < deadline:
            time.sleep(0.01)
            now, cpu = time.monotonic(), all_clock.ns()
            if cpu is None or proc.poll() is not None:
                raise RuntimeError("the daemon exited:\n" + "".join(log_tail))
            mock_now = mock_clock.ns() if mock_clock else 0
            counting_now = counting_clock.ns() if counting else cpu
            span = now - last[0]
            trace.append((round(now - t0, 3), round((cpu - last[1]) / 1e9 / span, 2),
                          round(((counting_now or last_counting) - last_counting) / 1e9 / span, 2),
                          round((mock_now - mock_cpu[0]) / 1e9 / span, 2)))
            mock_cpu[0] = mock_now
            if counting_now is not None and (counting_now - last_counting) / 1e9 > threshold * (now - last[0]):
                last_busy = (now, cpu, stat_cpu_s(proc.pid))
            last = (now, cpu)
            last_counting = counting_now if counting_now is not None else last_counting
            if now - last_busy[0] >= idle_s:
                if catchup_hwm is None:
                    catchup_hwm = vm_hwm_kb(proc.pid)
                values = scrape(port)
                if values["flow_exporter_records_total"] is not None and \
                        values["flow_exporter_records_total"] >= target:
                    break
                last = (time.monotonic(), all_clock.ns())
                last_counting = counting_clock.ns() if counting else last[1]
        else:
            raise RuntimeError("timed out waiting for the records:\n" + "".join(log_tail))
        seconds = last_busy[0] - t0
        result = dict(seconds=seconds, per_s=target / seconds, cpu_us=(last_busy[2] - stat0) * 1e6 / target,
                      cpu_us_sched=(last_busy[1] - cpu0) / 1e3 / target, hwm_kb=vm_hwm_kb(proc.pid),
                      catchup_hwm_kb=catchup_hwm,
                      fetch_wakeups=values["flow_exporter_kafka_fetch_wakeups_total"],
                      series=values["flow_exporter_series"], counted=values["flow_exporter_records_counted_total"],
                      records=values["flow_exporter_records_total"], trace=trace)
    finally:
        for clock in (all_clock, counting_clock, mock_clock):
            if clock:
                clock.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(fresh, ignore_errors=True)
    return result


def spread(values):
    return f"{statistics.median(values):,.0f} [{min(values):,.0f}-{max(values):,.0f}]"


def summarize(name, scenario, all_runs, mock_info, variant):
    rec = scenario["records"]
    runs = [dict(ceiling=r["ceiling"], daemon=r["daemons"][variant]) for r in all_runs]
    daemon_rate = [r["daemon"]["per_s"] for r in runs]
    ceiling_rate = [r["ceiling"]["per_s"] * rec for r in runs]
    ratio = [r["daemon"]["per_s"] / (r["ceiling"]["per_s"] * rec) for r in runs]
    cpu = [r["daemon"]["cpu_us"] for r in runs]
    hwm = [r["daemon"]["hwm_kb"] / 1024 for r in runs]
    catchup = [r["daemon"]["catchup_hwm_kb"] / 1024 for r in runs]
    s = dict(scenario=name, variant=variant, title=scenario["title"], records=mock_info["records"],
             series=runs[-1]["daemon"]["series"], runs=len(runs),
             daemon_per_s=statistics.median(daemon_rate), daemon_per_s_min=min(daemon_rate),
             daemon_per_s_max=max(daemon_rate), ceiling_per_s=statistics.median(ceiling_rate),
             ceiling_per_s_min=min(ceiling_rate), ceiling_per_s_max=max(ceiling_rate),
             ratio=statistics.median(ratio), ratio_min=min(ratio), ratio_max=max(ratio),
             cpu_us=statistics.median(cpu), cpu_us_min=min(cpu), cpu_us_max=max(cpu),
             hwm_mb=statistics.median(hwm), hwm_mb_min=min(hwm), hwm_mb_max=max(hwm),
             catchup_mb=statistics.median(catchup), catchup_mb_min=min(catchup), catchup_mb_max=max(catchup),
             ceiling_cpu_us=statistics.median([r["ceiling"]["cpu_us"] / rec for r in runs]))
    if name in GO_RATE:
        s["vs_go"] = s["daemon_per_s"] / GO_RATE[name]
    print(f"\n## {name}, {variant}: {scenario['title']} ({mock_info['records']:,.0f} records, {s['series']:,.0f} series, "
          f"{len(runs)} runs; median [min-max])")
    print(f"  daemon   records/s  {spread(daemon_rate)}")
    print(f"  ceiling  records/s  {spread(ceiling_rate)}  (count-only librdkafka, same data and settings)")
    print(f"  ratio daemon/ceiling {s['ratio']:.2f} [{s['ratio_min']:.2f}-{s['ratio_max']:.2f}]"
          + (f";  vs Go {s['vs_go']:.1f}x" if "vs_go" in s else ""))
    print(f"  daemon CPU us/record {s['cpu_us']:.3f} [{s['cpu_us_min']:.3f}-{s['cpu_us_max']:.3f}]  "
          f"(ceiling {s['ceiling_cpu_us']:.3f})")
    print(f"  peak RSS catching up {s['catchup_mb']:.1f} MB [{s['catchup_mb_min']:.1f}-{s['catchup_mb_max']:.1f}];  "
          f"with the final scrape {s['hwm_mb']:.1f} MB [{s['hwm_mb_min']:.1f}-{s['hwm_mb_max']:.1f}]")
    sys.stdout.flush()
    return s


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemon", help="the flow-exporter binary (one variant named \"daemon\")")
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=BINARY [FLAG...]: a daemon variant, run in every run on the same data (repeatable)")
    ap.add_argument("--ceiling-prefetch-bytes", type=int, default=8 << 20,
                    help="the ceiling's prefetch bound (the daemon's --kafka-prefetch-bytes default; 0: librdkafka's)")
    ap.add_argument("--tools", required=True, help="the build's tests/bench directory (fx_bench_kafka)")
    ap.add_argument("--scenarios", default="small,large,multi")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workers", default="auto", help="--workers of the daemon; the ceiling uses as many consumers")
    ap.add_argument("--ceiling-consumers", type=int, help="override the ceiling's consumer count")
    ap.add_argument("--daemon-arg", action="append", default=[], help="extra daemon flag (repeatable)")
    ap.add_argument("--kafka-opt", action="append", default=[], help="librdkafka setting for both (repeatable)")
    ap.add_argument("--compression", default="none", help="producer compression.codec of the data")
    ap.add_argument("--messages-scale", type=float, default=1.0, help="scale the scenarios' message counts")
    ap.add_argument("--smoke", action="store_true", help="one short run of a small scenario (ctest)")
    ap.add_argument("--trace", action="store_true", help="log the daemon's (all threads, counting threads) and the mock's CPU (cores) every 10 ms of each run")
    ap.add_argument("--json", help="write the runs and the summaries here")
    opts = ap.parse_args()
    variants = {}
    for v in opts.variant:
        name, command = v.split("=", 1)
        words = shlex.split(command)
        if name == CEILING:
            ap.error(f"--variant: {CEILING} names the count-only consumer")
        variants[name] = (words[0], words[1:])
    if opts.daemon:
        variants["daemon"] = (opts.daemon, [])
    if not variants:
        ap.error("--daemon or --variant is required")

    workers = os.cpu_count() if opts.workers == "auto" else int(opts.workers)
    consumers = opts.ceiling_consumers or workers
    kafka_opts = ["auto.offset.reset=earliest", "session.timeout.ms=6000"] + opts.kafka_opt
    daemon_args = [f"--workers={opts.workers}"] + opts.daemon_arg
    if opts.smoke:
        scenarios, runs_wanted = {"smoke": SMOKE}, 1
    else:
        scenarios = {n: dict(SCENARIOS[n]) for n in opts.scenarios.split(",")}
        runs_wanted = opts.runs
    tag = f"{os.getpid()}-{int(time.time())}"
    summaries, everything = [], {}
    with tempfile.TemporaryDirectory(prefix="fx-bench-") as tmp:
        asn_file = os.path.join(tmp, "asn.txt")
        with open(asn_file, "w") as f:
            f.write(f"{LOCAL_ASN}\tEXAMPLE-LOCAL - Example, ZZ\n")
            for a in range(64512, 64512 + 1000):
                f.write(f"{a}\tPRIVATE-{a} - Bench AS {a}, ZZ\n")
        for name, scenario in scenarios.items():
            scenario["compression"] = opts.compression
            scenario["messages"] = int(scenario["messages"] * opts.messages_scale)
            log(f"{name}: producing {scenario['messages']:,} messages into {scenario['partitions']} partitions")
            mock = Mock(opts.tools, scenario)
            try:
                log(f"{name}: ready: {mock.info}")
                runs = []
                names = list(variants)
                for k in range(runs_wanted):
                    load = os.getloadavg()[0]
                    rec = scenario["records"]
                    daemons = {}
                    # The ceiling takes its turn in the rotation too, so that no variant always runs right
                    # after it (or last): a position in the run is nobody's advantage.
                    order = [CEILING] + names
                    for v in order[k % len(order):] + order[:k % len(order)]:
                        if v == CEILING:
                            ceiling = run_ceiling(opts.tools, mock, f"ceiling-{tag}-{name}-{k}", consumers,
                                                  kafka_opts, opts.ceiling_prefetch_bytes)
                            continue
                        binary, flags = variants[v]
                        daemon = run_daemon(binary, mock, f"fx-{tag}-{name}-{k}-{v}", asn_file,
                                            daemon_args + flags, kafka_opts, trace_mock=opts.trace)
                        daemons[v] = daemon
                        if opts.trace:
                            log("cpu trace (s: cores of the daemon/its counting threads/the mock): " +
                                " ".join(f"{t:.2f}:{c:.1f}/{w:.1f}/{m:.1f}" for t, c, w, m in daemon["trace"]))
                        want_series = mock.info["series"]
                        if scenario.get("held") == "max-series":  # bounded by the flag, the rest overflowed
                            want_series = min(want_series, max_series_arg(opts.daemon_arg, want_series))
                        if daemon["counted"] != mock.info["records"] or daemon["series"] != want_series:
                            raise SystemExit(f"{name}: counted {daemon['counted']} records in {daemon['series']} "
                                             f"series, expected {mock.info['records']} in {mock.info['series']}")
                        if not opts.trace:
                            del daemon["trace"]
                    for v in names:
                        daemon = daemons[v]
                        log(f"{name} run {k} {v}: daemon {daemon['per_s']:,.0f} rec/s {daemon['cpu_us']:.3f} cpu-us/rec "
                            f"(sched {daemon['cpu_us_sched']:.3f}) {daemon['catchup_hwm_kb'] / 1024:.1f} MB "
                            f"({daemon['hwm_kb'] / 1024:.1f} with the scrape) "
                            f"series {daemon['series']:,.0f}; ceiling {ceiling['per_s'] * rec:,.0f} rec/s "
                            f"{ceiling['cpu_us'] / rec:.3f} cpu-us/rec; ratio "
                            f"{daemon['per_s'] / (ceiling['per_s'] * rec):.2f}; load {load:.1f}")
                    runs.append(dict(ceiling=ceiling, daemons=daemons, load=load))
                for v in names:
                    summaries.append(summarize(name, scenario, runs, mock.info, v))
                everything[name] = dict(scenario=scenario, mock=mock.info, runs=runs)
            finally:
                mock.stop()
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(dict(summaries=summaries, scenarios=everything, workers=opts.workers, variants=variants,
                           daemon_args=daemon_args, kafka_opts=kafka_opts), f, indent=1)
    print("\n| scenario | variant | records/s (median [min-max]) | ceiling records/s | daemon/ceiling | vs Go | CPU µs/record | peak RSS MB catching up | with the final scrape | series |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in summaries:
        print(f"| {s['title']} | {s['variant']} | {s['daemon_per_s']:,.0f} [{s['daemon_per_s_min']:,.0f}-{s['daemon_per_s_max']:,.0f}] "
              f"| {s['ceiling_per_s']:,.0f} [{s['ceiling_per_s_min']:,.0f}-{s['ceiling_per_s_max']:,.0f}] "
              f"| {s['ratio']:.2f} [{s['ratio_min']:.2f}-{s['ratio_max']:.2f}] "
              f"| {s.get('vs_go', 0):.1f}x | {s['cpu_us']:.2f} [{s['cpu_us_min']:.2f}-{s['cpu_us_max']:.2f}] "
              f"| {s['catchup_mb']:.0f} [{s['catchup_mb_min']:.0f}-{s['catchup_mb_max']:.0f}] "
              f"| {s['hwm_mb']:.0f} [{s['hwm_mb_min']:.0f}-{s['hwm_mb_max']:.0f}] | {s['series']:,.0f} |")


if __name__ == "__main__":
    main()
