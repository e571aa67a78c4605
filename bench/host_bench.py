#!/usr/bin/env python3
"""Benchmarks of the host issue, run on demand (make bench), printing ratios.

1. Start overhead: time from `pampa vm start` to "pampa-guest: ready" on the
   serial console, against the same guest started by a hand-written QEMU
   command line in the same run. Goal: pampad adds under 50 ms.
2. API latency with 500 defined VMs: p50/p99 of `GET /vms` and `GET /vms/NAME`
   over the unix socket on a kept-alive connection. Goal: p99 under 10 ms.
3. pampad's resident memory per defined VM. Goal: under 1 MiB.
4. API latency under long operations: with the 500 VMs of benchmark 2 still defined and a running
   guest `busy` (1 GiB RAM, its page cache filled from a disk with 768 MiB of random data), p50/p99/max
   of `GET /vms`, `/vms/busy`, `/vms/cold` (a stopped VM), `/pools/default/volumes` and `/networks`
   over the unix socket on a kept-alive connection: idle, then while each of these runs: a backup of
   the running `busy`, a backup of the stopped `cold` (1 GiB of random data), `snapshot create
   --memory` of `busy`, a restore of cold's backup as a new VM. Goal: every p99 under 50 ms, and
   readers unaffected by the operations: p99(during)/p99(idle) near 1.

   Each phase also prints pampad's and the host's CPU use: on 2 cores the readers' own loop keeps
   the host busy, so a long tail during an operation may be CPU contention rather than waiting.

Before and after: BENCH_BEFORE=REV (a commit, e.g. the one before a change) builds pampad and pampa of
REV in a git worktree (/tmp/pampa-bench-REV, kept for the next run), then runs the chosen benchmarks
against REV's binaries and against this tree's build, one after the other in this one run, and prints
each measure side by side with after/before (the harness and the guest are this tree's for both).

The whole run takes about 3 minutes on 2 cores (benchmark 4: about 80 s, most of it making its disks
and booting `busy`). BENCH_ONLY=4 (a comma-separated list, e.g. BENCH_ONLY=2,3 or 1) runs only those
benchmarks; 4 still defines the 500 VMs first.
"""
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pampa_harness import APPEND, GUEST, Pampad, disk_with_random_tail  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
SUMMARY = {}  # measure -> value in ms or KiB, written to BENCH_SUMMARY (a JSON file) when that is set
ONLY = {int(x) for x in os.environ.get("BENCH_ONLY", "1,2,3,4").split(",") if x.strip()}
READY = b"pampa-guest: ready"
MiB = 1 << 20
IDLE_VMS = 500


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def wait_for(path, needle, t0, timeout=120):
    while time.monotonic() - t0 < timeout:
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    return time.monotonic() - t0
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{needle!r} never appeared in {path}")


def pampad_start(d, i):
    """Starts a guest through pampad; returns (seconds to ready, seconds the CLI took, QEMU argv)."""
    name = f"bench{i}"
    d.create_guest(name, "--net", "none")
    t0 = time.monotonic()
    d.cli("vm", "start", name)
    cli_secs = time.monotonic() - t0
    vm = d.vm(name)
    run_dir = os.path.join(d.root, "vm", vm["uuid"][:8])
    secs = wait_for(os.path.join(run_dir, "console.log"), READY, t0)
    with open(f"/proc/{vm['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    d.cli("vm", "stop", name)
    return secs, cli_secs, argv, run_dir, name


def hand_written_qemu(argv, run_dir, root, i):
    """The very same QEMU command line, started by hand (sockets moved to a new directory)."""
    hand_dir = os.path.join(root, f"hand{i}")
    os.makedirs(hand_dir, exist_ok=True)
    argv = [a.replace(run_dir, hand_dir) for a in argv]
    log = os.path.join(hand_dir, "console.log")
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    secs = wait_for(log, READY, t0)
    p.kill()
    p.wait()
    return secs


def qmp_ready(path, t0, timeout=30):
    """Seconds from t0 until QEMU's QMP socket greets us."""
    while time.monotonic() - t0 < timeout:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            if s.recv(4096).startswith(b'{"QMP"'):
                s.close()
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError("QMP never answered at " + path)


def time_to_qmp(d, runs):
    """pampad's own overhead, free of guest-boot jitter: from the command to a QEMU that answers QMP."""
    d.create_guest("qmpbench", "--net", "none")
    d.cli("vm", "start", "qmpbench")
    vm = d.vm("qmpbench")
    run_dir = os.path.join(d.root, "vm", vm["uuid"][:8])
    with open(f"/proc/{vm['pid']}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    d.cli("vm", "stop", "qmpbench")
    hand_dir = os.path.join(d.root, "handqmp")
    os.makedirs(hand_dir, exist_ok=True)
    hand_argv = [a.replace(run_dir, hand_dir) for a in argv]
    hand, ours = [], []
    for _ in range(runs):
        t0 = time.monotonic()
        p = subprocess.Popen(hand_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hand.append(qmp_ready(os.path.join(hand_dir, "qmp.sock"), t0))
        p.kill()
        p.wait()
        t0 = time.monotonic()
        d.cli("vm", "start", "qmpbench")  # returns once pampad has done the QMP handshake
        ours.append(time.monotonic() - t0)
        d.cli("vm", "stop", "qmpbench")
    d.cli("vm", "delete", "qmpbench")
    return hand, ours


def define_idle_vms(conn, n=IDLE_VMS):
    """Defines n stopped VMs idle000.. through the API and waits until none is busy."""
    for i in range(n):
        body = json.dumps({"name": f"idle{i:03d}", "cpus": 1, "memory": "128M", "networks": []})
        conn.request("POST", "/api/v1/vms", body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        assert r.status == 202, r.status
    deadline = time.time() + 60
    while time.time() < deadline:
        conn.request("GET", "/api/v1/vms")
        vms = json.loads(conn.getresponse().read())
        if len(vms) >= n and all(v["busy"] == "" for v in vms):
            break
        time.sleep(0.2)


def delete_idle_vms(conn, n=IDLE_VMS):
    for i in range(n):
        conn.request("DELETE", f"/api/v1/vms/idle{i:03d}")
        conn.getresponse().read()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def get_json(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, (path, r.status, body)
    return json.loads(body)


# Benchmark 4's readers; `cold` is the stopped VM (the target of the stopped backup, the restore's source).
READERS = {"vm list": "/api/v1/vms", "vm show busy": "/api/v1/vms/busy", "vm show cold": "/api/v1/vms/cold",
           "volume list": "/api/v1/pools/default/volumes", "net list": "/api/v1/networks"}
IDLE_ROUNDS = 200


def cpu_ticks(pid):
    """(pampad's user+system ticks, the host's busy ticks, the host's total ticks) from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        own = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:13])
    with open("/proc/stat") as f:
        cols = [int(x) for x in f.readline().split()[1:9]]
    return own, sum(cols) - cols[3] - cols[4], sum(cols)


def cpu_report(before, after):
    """pampad's CPU use (100% = one core) and the host's (100% = all cores) between two cpu_ticks()."""
    own, busy, total = (b - a for a, b in zip(before, after))
    cores = os.cpu_count() or 1
    return f"pampad CPU {own / max(total, 1) * cores * 100:4.0f}%, host CPU {busy / max(total, 1) * 100:3.0f}% busy"


def time_round(conn, samples):
    for name, path in READERS.items():
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        samples[name].append((time.perf_counter() - t0) * 1000)
        assert r.status == 200, (name, r.status, body)


def readers_during(conn, task):
    """Times every reader, round after round, for as long as the task runs. A round starts only while
    the task is running (asked on the same connection, not timed), so a reader that has to wait for
    the operation shows up as a slow sample. Returns (samples, seconds, the task's final JSON)."""
    samples = {name: [] for name in READERS}
    t0 = time.monotonic()
    while True:
        t = get_json(conn, f"/api/v1/tasks/{task}")
        if t["state"] != "running":
            break
        time_round(conn, samples)
    assert t["state"] == "succeeded", t
    return samples, time.monotonic() - t0, t


def long_operations(d, conn):
    """Benchmark 4: {phase: {reader: samples in ms}} idle, then during each long operation."""
    d.cli("vm", "create", "busy", "--cpus", "1", "--memory", "1G", "--net", "none",
          "--disk-image", disk_with_random_tail(d, "busy.raw", 768), "--kernel", os.path.join(GUEST, "vmlinuz"),
          "--initrd", os.path.join(GUEST, "initrd.img"), "--append", APPEND)
    d.cli("vm", "create", "cold", "--cpus", "1", "--memory", "128M", "--net", "none",
          "--disk-image", disk_with_random_tail(d, "cold.raw", 1024), "--kernel", os.path.join(GUEST, "vmlinuz"),
          "--initrd", os.path.join(GUEST, "initrd.img"), "--append", APPEND)
    for f in ("busy.raw", "cold.raw"):  # imported into the pool: the copies are not needed any more
        os.remove(os.path.join(d.root, f))
    d.cli("vm", "start", "busy")
    d.wait_console("busy", READY.decode())
    d.cli("repo", "add", "r", "--url", os.path.join(d.root, "repo"), "--no-encryption")
    # The guest's RAM (its page cache) holds the disk's random tail: the memory snapshot saves ~800 MB.
    d.exec("busy", "dd", "if=/dev/vda", "of=/dev/null", "bs=1M", "skip=1024", "count=768")

    phases = {"idle": {name: [] for name in READERS}}
    t0, ticks = time.monotonic(), cpu_ticks(d.proc.pid)
    for _ in range(IDLE_ROUNDS):
        time_round(conn, phases["idle"])
    print(f"{'idle':>18} | {time.monotonic() - t0:4.1f} s: {IDLE_ROUNDS:3d} rounds, "
          f"{cpu_report(ticks, cpu_ticks(d.proc.pid))}")
    ops = [("backup running", ["backup", "run", "busy", "--repo", "r", "--async"]),
           ("backup stopped", ["backup", "run", "cold", "--repo", "r", "--async"]),
           ("snapshot --memory", ["snapshot", "create", "busy", "s1", "--memory", "--async"]),
           ("restore", None)]
    cold_backup = None
    for what, args in ops:
        if what == "restore":
            args = ["backup", "restore", cold_backup, "--repo", "r", "--as", "restored", "--async"]
        task = d.cli(*args).stdout.strip()
        ticks = cpu_ticks(d.proc.pid)
        phases[what], secs, t = readers_during(conn, task)
        cpu = cpu_report(ticks, cpu_ticks(d.proc.pid))
        if what == "backup stopped":
            cold_backup = (t.get("result") or {}).get("id") or \
                [b for b in d.cli_json("backup", "list", "--repo", "r") if b["vm"] == "cold"][0]["id"]
        n = min(len(xs) for xs in phases[what].values())
        print(f"{what:>18} | {secs:4.1f} s: {n:3d} rounds, {cpu} (task {task})")
    return phases


def print_long_operations(phases):
    print(f"{'phase':>18} | {'reader':<12} {'n':>4} {'p50':>8} {'p99':>8} {'max':>8}  (ms)")
    for what, samples in phases.items():
        for name, xs in samples.items():
            print(f"{what:>18} | {name:<12} {len(xs):4d} {percentile(xs, 50):8.2f} {percentile(xs, 99):8.2f} "
                  f"{max(xs):8.2f}" if xs else f"{what:>18} | {name:<12}    0  (the operation ended first)")
    ops = [w for w in phases if w != "idle"]
    print("p99 in ms, and p99(during)/p99(idle) in brackets:")
    print(f"{'reader':<13}{'idle':>8}" + "".join(f"{w:>22}" for w in ops))
    worst, worst_ratio = 0.0, 0.0
    for name in READERS:
        idle = percentile(phases["idle"][name], 99)
        row = f"{name:<13}{idle:8.2f}"
        for w in ops:
            if not phases[w][name]:
                row += f"{'n/a':>22}"
                continue
            p99 = percentile(phases[w][name], 99)
            worst, worst_ratio = max(worst, p99), max(worst_ratio, p99 / idle)
            row += f"{p99:13.2f} (x{p99 / idle:5.2f})"
            SUMMARY[f"{name} p99 during {w} (ms)"] = p99
        print(row)
    SUMMARY["worst reader p99 during an operation (ms)"] = worst
    SUMMARY["worst p99(during)/p99(idle)"] = worst_ratio
    print(f"worst p99 {worst:.2f} ms (goal < 50 ms: ratio {worst / 50:.2f}); "
          f"worst p99(during)/p99(idle) x{worst_ratio:.2f} (goal: near 1)")


def main():
    d = Pampad(subnet="10.216.0.0/24").start()
    try:
        if 1 in ONLY:
            print("== command to a QEMU that answers QMP (median of 15): the overhead pampad adds to a start")
            hand, ours = time_to_qmp(d, 15)
            h, o = statistics.median(hand), statistics.median(ours)
            SUMMARY["start overhead to QMP (ms)"] = (o - h) * 1000
            print(f"hand-written qemu: {h * 1000:6.1f} ms    pampa vm start: {o * 1000:6.1f} ms    "
                  f"overhead {(o - h) * 1000:+.1f} ms (goal < 50 ms: ratio {(o - h) * 1000 / 50:.2f}), "
                  f"pampa/qemu = {o / h:.2f}")
            print(f"== start to 'pampa-guest: ready' (TCG, median of {RUNS}, alternating)")
            hand, ours, cli = [], [], []
            for i in range(RUNS):
                secs, cli_secs, argv, run_dir, name = pampad_start(d, i)
                ours.append(secs)
                cli.append(cli_secs)
                hand.append(hand_written_qemu(argv, run_dir, d.root, i))
                d.cli("vm", "delete", name)
            h, o = statistics.median(hand), statistics.median(ours)
            SUMMARY["start to guest ready, pampa/qemu"] = o / h
            print(f"hand-written qemu: {h * 1000:8.0f} ms   runs {[round(x * 1000) for x in hand]}")
            print(f"pampa vm start:    {o * 1000:8.0f} ms   runs {[round(x * 1000) for x in ours]}")
            print(f"`pampa vm start` returned (QEMU up, QMP connected) after median "
                  f"{statistics.median(cli) * 1000:.0f} ms")
            print(f"difference {(o - h) * 1000:+.0f} ms, ratio pampa/qemu = {o / h:.3f}"
                  " (TCG boot jitter on 2 cores, +-2 s, hides the overhead here: see the QMP measure above)")

        if not ONLY & {2, 3, 4}:
            return
        pid = d.proc.pid
        rss0 = rss_kib(pid)
        conn = UnixHTTP(d.sock)
        define_idle_vms(conn)
        time.sleep(0.5)
        rss1 = rss_kib(pid)
        if ONLY & {2, 3}:
            print(f"== API latency and memory with {IDLE_VMS} defined VMs")

            def timed(path, n):
                out = []
                for i in range(n):
                    t0 = time.perf_counter()
                    conn.request("GET", path(i))
                    r = conn.getresponse()
                    r.read()
                    out.append((time.perf_counter() - t0) * 1000)
                    assert r.status == 200
                return out

            lst = timed(lambda i: "/api/v1/vms", 200)
            show = timed(lambda i: f"/api/v1/vms/idle{i % IDLE_VMS:03d}", 1000)
            for name, xs in (("vm list (500 VMs)", lst), ("vm show", show)):
                p99 = percentile(xs, 99)
                SUMMARY[f"{name} p99 (ms)"] = p99
                print(f"{name:18s} p50 {percentile(xs, 50):6.2f} ms  p99 {p99:6.2f} ms  "
                      f"(goal p99 < 10 ms: ratio {p99 / 10:.2f})")
            per_vm = (rss1 - rss0) / IDLE_VMS
            SUMMARY["RSS per defined VM (KiB)"] = per_vm
            print(f"pampad RSS {rss0 / 1024:.1f} MiB -> {rss1 / 1024:.1f} MiB with 500 VMs: "
                  f"{per_vm:.1f} KiB per VM (goal < 1024 KiB: ratio {per_vm / 1024:.3f})")
        if 4 in ONLY:
            print(f"== API latency under long operations ({IDLE_VMS} defined VMs, a running 1 GiB guest `busy`)")
            print_long_operations(long_operations(d, conn))
        # The 500 idle VMs are removed through the API as well; destroy() stops and deletes the rest.
        delete_idle_vms(conn)
    finally:
        d.destroy()
        if os.environ.get("BENCH_SUMMARY"):
            with open(os.environ["BENCH_SUMMARY"], "w") as f:
                json.dump(SUMMARY, f)


def build_of(rev):
    """pampad and pampa built from rev in a worktree of this repository; returns the build directory."""
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    sha = subprocess.run(["git", "-C", top, "rev-parse", "--short", rev], check=True, capture_output=True,
                         text=True).stdout.strip()
    tree = f"/tmp/pampa-bench-{sha}"
    if not os.path.isdir(tree):
        subprocess.run(["git", "-C", top, "worktree", "add", "-f", "--detach", tree, sha], check=True,
                       capture_output=True)
    build = os.path.join(tree, "build")
    subprocess.run(["cmake", "-S", tree, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"== building pampad and pampa of {rev} ({sha}) in {build}", flush=True)
    subprocess.run(["make", "-C", build, "-j2", "pampad", "pampa"], check=True, stdout=subprocess.DEVNULL)
    return build


def before_and_after(rev):
    """Runs this bench against rev's binaries and this tree's, then prints them side by side."""
    top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    builds = [(f"before ({rev})", build_of(rev)),
              ("after (this tree)", os.environ.get("PAMPA_BUILD", os.path.join(top, "build")))]
    results = []
    for label, build in builds:
        print(f"\n######## {label}: {build}", flush=True)
        out = f"/tmp/pampa-bench-summary-{os.getpid()}.json"
        env = dict(os.environ, PAMPA_BUILD=build, BENCH_SUMMARY=out)
        env.pop("BENCH_BEFORE")
        subprocess.run([sys.executable, os.path.abspath(__file__)], env=env, check=True)
        with open(out) as f:
            results.append(json.load(f))
        os.remove(out)
    before, after = results
    print(f"\n== before ({rev}) and after, in this run; after/before (lower is better for all)")
    print(f"{'measure':<58}{'before':>10}{'after':>10}{'after/before':>14}")
    for key in before:
        if key not in after:
            continue
        b, a = before[key], after[key]
        print(f"{key:<58}{b:10.2f}{a:10.2f}{(a / b if b else float('nan')):14.2f}")


if __name__ == "__main__":
    if os.environ.get("BENCH_BEFORE"):
        before_and_after(os.environ["BENCH_BEFORE"])
    else:
        main()
