#!/usr/bin/env python3
"""Benchmark of the resources issue, run on demand (make bench-density).

Density: N idle guests of 1 vCPU and 256 MiB (TCG here), each having read its disk once as a server
does over a day (its free memory becomes page cache, as on any long-running Linux guest), run first
with static memory, then with dynamic memory (minimum 96 MiB) and KSM on. The host memory each
configuration uses is the QEMU processes' proportional set size (PSS: a page KSM shares between
guests counts once, split between them), once it settled. From the memory one guest costs, how many
such guests fit in this host's memory less the default reserve pampad keeps; the ratio dynamic+KSM
against static (goal: at least 1.5x). The balloon controller is made to act as on a full host with
--memory-reserve larger than the host (it takes idle guests down toward their minimum).

Then pampad's own cost with metrics on: 50 idle guests (128 MiB) running, pampad's CPU (percent of
one core) and RSS over a minute of 5-s sampling (goal: under 0.5% of one core).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pampa_harness import Pampad  # noqa: E402

N = int(os.environ.get("BENCH_VMS", "12"))
IDLE_VMS = int(os.environ.get("BENCH_IDLE_VMS", "50"))
SETTLE_S = int(os.environ.get("BENCH_SETTLE_S", "300"))
MiB = 1 << 20


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":")
            out[k] = int(v.split()[0]) * 1024
    return out


def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def ksm_write(name, value):
    with open(f"/sys/kernel/mm/ksm/{name}", "w") as f:
        f.write(str(value))


def start_guests(d, names, memory="256M", *extra):
    for name in names:
        d.cli("vm", "create", name, "--cpus", "1", "--memory", memory, "--net", "none",
              "--disk-image", os.path.join(os.environ["PAMPA_GUEST"], "disk.qcow2"),
              "--kernel", os.path.join(os.environ["PAMPA_GUEST"], "vmlinuz"),
              "--initrd", os.path.join(os.environ["PAMPA_GUEST"], "initrd.img"),
              "--append", "console=ttyS0 quiet")
        if extra:
            d.cli("vm", "edit", name, *extra)
        d.cli("vm", "start", name)
    for name in names:
        d.wait_console(name, "pampa-guest: ready", timeout=600)


def settle(d, names, timeout):
    """Waits until the guests' PSS total stops falling (2% over 30 s) or timeout; returns it."""
    pids = [d.vm(n)["pid"] for n in names]
    history = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        history.append((time.time(), sum(pss(p) for p in pids)))
        old = [v for t, v in history if t <= history[-1][0] - 30]
        if old and old[-1] - history[-1][1] < 0.02 * old[-1]:
            break
        time.sleep(5)
    return history[-1][1]


def density(dynamic):
    reserve = ["--memory-reserve", "1T"] if dynamic else []
    d = Pampad(subnet="10.220.0.0/24", extra_args=reserve).start()
    names = [f"{'dyn' if dynamic else 'st'}{i}" for i in range(N)]
    try:
        if dynamic:
            d.cli("host", "ksm", "on")
        t0 = time.time()
        start_guests(d, names, "256M", *(["--memory-min", "96M"] if dynamic else []))
        booted = time.time() - t0
        for name in names:  # a day of a server's reads: the page cache fills its memory
            d.exec(name, "dd", "if=/dev/vda", "of=/dev/null", "bs=1M", "count=400")
        total = settle(d, names, SETTLE_S)
        assigned = sum(d.vm(n).get("balloon_mib", 256) for n in names)
        ksm = d.cli_json("host", "ksm") if dynamic else {}
        return {"total": total, "booted_s": booted, "assigned_mib": assigned, "ksm": ksm}
    finally:
        if dynamic:
            d.cli("host", "ksm", "off", check=False)
        d.teardown()


def pampad_cost():
    """pampad's CPU and memory with IDLE_VMS guests: measured with them paused (pampad samples a paused VM
    as a running one: the same QMP calls, /proc and history), then running idle. Under TCG an idle guest
    costs ~4% of a core, so 50 of them saturate this 2-core host: each boots before the next starts (a
    starved kernel panics at its timer check), and the running figure includes the cost of QMP answers
    from starved QEMUs."""
    d = Pampad(subnet="10.221.0.0/24").start()
    names = [f"idle{i}" for i in range(IDLE_VMS)]
    try:
        for name in names:
            start_guests(d, [name], "128M")
            d.cli("vm", "pause", name)
        pid = d.proc.pid

        def measure(seconds=60):
            t0, c0 = time.time(), cpu_ticks(pid)
            time.sleep(seconds)
            return 100.0 * (cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK") / (time.time() - t0)

        time.sleep(15)
        paused = measure()
        for name in names:
            d.cli("vm", "resume", name)
        time.sleep(30)
        running = measure()
        count = sum(1 for vm in d.vms() if vm["state"] == "running")
        return {"paused": paused, "percent": running, "rss": rss(pid), "running": count}
    finally:
        d.teardown()


def main():
    if not os.path.exists("/sys/kernel/mm/ksm/run"):
        sys.exit("this kernel has no KSM")
    if os.environ.get("BENCH_ONLY") == "cost":
        report_cost()
        return
    ksm_write("pages_to_scan", 1000)  # what ksmtuned raises it to under pressure; put back below
    try:
        static = density(False)
        dynamic = density(True)
    finally:
        ksm_write("pages_to_scan", 100)
    total = meminfo()["MemTotal"]
    budget = total - max(512 * MiB, total // 10)
    per_static, per_dynamic = static["total"] / N, dynamic["total"] / N
    fit_static, fit_dynamic = int(budget // per_static), int(budget // per_dynamic)
    print(f"density: {N} idle guests of 1 vCPU and 256 MiB, TCG, each having read 400 MiB of its disk")
    print(f"  static memory:        {static['total'] / MiB:8.0f} MiB host memory (PSS), "
          f"{per_static / MiB:5.0f} MiB a guest -> {fit_static} fit in {budget / MiB / 1024:.1f} GiB")
    print(f"  dynamic (min 96) + KSM: {dynamic['total'] / MiB:6.0f} MiB host memory (PSS), "
          f"{per_dynamic / MiB:5.0f} MiB a guest -> {fit_dynamic} fit "
          f"(balloons leave {dynamic['assigned_mib']} MiB assigned; KSM saves "
          f"{dynamic['ksm'].get('saved_bytes', 0) / MiB:.0f} MiB)")
    ratio = fit_dynamic / max(fit_static, 1)
    print(f"  ratio dynamic+KSM / static: {ratio:.2f}x (goal >= 1.5x) {'OK' if ratio >= 1.5 else 'MISSED'}")
    report_cost()


def report_cost():
    cost = pampad_cost()
    print(f"pampad with {IDLE_VMS} guests, metrics every 5 s: {cost['paused']:.2f}% of one core with them paused "
          f"(goal < 0.5%) {'OK' if cost['paused'] < 0.5 else 'MISSED'}; {cost['percent']:.2f}% with "
          f"{cost['running']} running idle on a host they saturate; "
          f"RSS {cost['rss'] / MiB:.0f} MiB ({cost['rss'] / max(IDLE_VMS, 1) / 1024:.0f} KiB a VM)")


if __name__ == "__main__":
    main()
