#!/usr/bin/env python3
"""Benchmark of the HA issue, run on demand (make bench-ha).

Time from the loss of a host to the guest's ready line on another host, with the default settings, on
a pool of three hosts (network namespaces, one etcd, a shared pool; tests/integration/pool_harness.py),
for two kinds of loss: the host's link cut, and its pampad killed (kill -9) and left dead. Each run
boots an HA guest on h2 (or on whichever host runs it after the previous run), loses that host, and
times: when its copy was fenced there, when another host's QEMU runs the VM, and when the guest printed
its ready line. Printed: each run, the median per kind, the settings (heartbeat, lease, fencing), and
the ratio to Proxmox VE's documented failover (about 120 s before the restart begins, plus the same
boot) and to the goal of 30 s.
"""
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pool_harness import Pool  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PROXMOX_DETECTION_S = 120  # "typical error detection and failover times of about 2 minutes" (pve-docs, ha-manager)
GOAL_S = 30


def running_on(pool, uuid):
    return [h.name for h in pool.hosts if h.qemu_pids(uuid)]


def wait(check, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(step)
    raise RuntimeError("timed out")


def one_run(pool, kind, name):
    h1 = pool.hosts[0]
    watcher = h1 if pool.vm_host != "h1" else pool.hosts[2]
    watcher.create_guest(name, "--host", pool.vm_host, "--pool", "shared")
    watcher.cli("vm", "edit", name, "--ha", "on")
    tb = time.time()
    watcher.cli("vm", "start", name)
    old = pool.host(pool.vm_host)
    old.wait_console(name, "pampa-guest: ready")
    boot = time.time() - tb  # the same boot is in every failover, Proxmox's too
    uuid = watcher.vm(name)["uuid"]
    time.sleep(2)
    t0 = time.time()
    if kind == "link cut":
        pool.cut(old)
    else:
        old.kill9()
    wait(lambda: not old.qemu_pids(uuid), 30)
    fenced = time.time() - t0
    new = wait(lambda: next((h for h in running_on(pool, uuid) if h != old.name), None), 60)
    started = time.time() - t0
    wait(lambda: "pampa-guest: ready" in pool.host(new).console(name), 60, step=0.2)
    ready = time.time() - t0
    # Back to a whole pool for the next run.
    if kind == "link cut":
        pool.heal(old)
    else:
        old.start()
    wait(lambda: watcher.cli_json("host", "show", old.name)["state"] == "online", 30, step=0.5)
    watcher.cli("vm", "stop", name)
    watcher.cli("vm", "delete", name)
    pool.vm_host = old.name
    return fenced, started, ready, boot


def main():
    pool = Pool(hosts=3).start()
    pool.vm_host = "h2"
    results = {}
    try:
        pool.hosts[0].cli("pool", "create", "shared", "--type", "shared", "--path", pool.shared)
        settings = pool.hosts[0].cli_json("ha", "status")["settings"]
        print(f"settings: heartbeat {settings['heartbeat_ms']} ms, lease {settings['lease_ms'] / 1000:.0f} s, "
              f"fencing {settings['fence_after_ms'] / 1000:.0f} s after the last renewal (accel: TCG)")
        for kind in ("link cut", "pampad killed"):
            runs, boots = [], []
            for i in range(RUNS):
                fenced, started, ready, boot = one_run(pool, kind, f"ha{len(results)}{i}")
                runs.append(ready)
                boots.append(boot)
                print(f"  {kind:14s} run {i + 1}: fenced {fenced:5.1f} s, QEMU elsewhere {started:5.1f} s, "
                      f"guest ready {ready:5.1f} s (a boot alone: {boot:4.1f} s)")
            results[kind] = (statistics.median(runs), statistics.median(boots))
    except BaseException:
        for h in pool.hosts:  # what the hosts said, for the failure at hand
            print(f"--- {h.name}: pampad {'running' if h.proc and h.proc.poll() is None else 'DOWN'}; its log ends:")
            print("".join(open(h.log).readlines()[-25:]))
        raise
    finally:
        pool.teardown()
    print()
    for kind, (median, boot) in results.items():
        proxmox = PROXMOX_DETECTION_S + boot
        print(f"{kind:14s} median {median:5.1f} s to the guest ready elsewhere: goal {GOAL_S} s "
              f"({'met' if median < GOAL_S else 'NOT met'}); Proxmox VE ~{PROXMOX_DETECTION_S} s + the same "
              f"boot = {proxmox:.0f} s, {proxmox / median:.1f}x ours (goal: 4x)")


if __name__ == "__main__":
    main()
