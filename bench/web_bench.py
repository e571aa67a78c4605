#!/usr/bin/env python3
"""The web console's benchmark (make bench-web), printing ratios against its goals.

A real pampad with 500 VMs (defined, stopped; no disks) serves the built console; Debian's
headless chromium loads it with an empty browser cache and, when run as root, after dropping the
host's page cache (cold, as after a reboot), RUNS times (median printed):
1. first load: navigation to the sign-in screen ready for input, and the bytes shipped
   (compressed, as sent); goal under 1 s;
2. time to interactive with 500 VMs in the tree: navigation (signed in) to the 500th tree node
   drawn; goal under 1 s; and a click on the last VM to its page;
3. the size of the app: gzip bytes of all its files (what a browser downloads when it opens every
   page); goal under 500 KiB. For scale: Proxmox VE's UI ships several MiB of ExtJS (not run here).
"""
import gzip
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pampa_harness import BUILD, Pampad, define_vms  # noqa: E402

VMS = int(os.environ.get("BENCH_VMS", "500"))
RUNS = os.environ.get("BENCH_RUNS", "5")
WEB = os.path.join(BUILD, "web")


def app_gzip_bytes():
    total = 0
    for root, _, files in os.walk(WEB):
        for f in files:
            if f.endswith((".gz", ".br")):
                continue
            with open(os.path.join(root, f), "rb") as fh:
                total += len(gzip.compress(fh.read(), 9))
    return total


def main():
    d = Pampad().start()
    try:
        define_vms("127.0.0.1", d.port, d.token, [f"web{i:03d}" for i in range(VMS)])
        env = dict(os.environ, PAMPA_URL=f"http://127.0.0.1:{d.port}", PAMPA_TOKEN=d.token, RUNS=RUNS,
                   EXPECT_VMS=str(VMS))
        out = subprocess.run(["node", os.path.join(os.path.dirname(__file__), "web_load.mjs")], env=env,
                             capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise SystemExit("web_load.mjs failed:\n" + out.stdout + out.stderr)
        runs = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        d.teardown()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    cold = "cold (page cache dropped)" if os.geteuid() == 0 else "browser cache empty, page cache warm (not root)"
    app = app_gzip_bytes()
    print(f"web console, {len(runs)} runs, {cold}, medians:")
    print(f"1. first load: {med['first_load_ms']:.0f} ms ({1000 / med['first_load_ms']:.1f}x the 1 s goal), "
          f"{med['first_load_bytes'] / 1024:.1f} KiB shipped")
    print(f"2. time to interactive with {VMS} VMs in the tree: {med['interactive_ms']:.0f} ms "
          f"({1000 / med['interactive_ms']:.1f}x the 1 s goal); last VM's page opens in {med['open_vm_ms']:.0f} ms")
    print(f"3. the whole app, gzip: {app / 1024:.1f} KiB ({500 * 1024 / app:.1f}x under the 500 KiB goal)")


if __name__ == "__main__":
    main()
