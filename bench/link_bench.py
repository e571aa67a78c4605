#!/usr/bin/env python3
"""Pampa alone over SSH through a link between sites, quick enough to profile with (the full comparison
against restic and borg is bench/backup_bench.py): a stopped VM with the test guest's 1 GiB disk grown by
384 MiB of random data (none of it compressible, so the link carries it all), backed up to a fresh SFTP repository on a
loopback sshd reached through bench/delay_proxy.py, then 16 scattered MiB changed and backed up again,
then the last backup restored as a new VM. Cold caches before each step.

    BENCH_RTT_MS (default 20): the round trip the relay adds (half each way); 0: straight to sshd.
    BENCH_CHUNK (default: the repository default): --chunk-size for the repository, e.g. 4M.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pampa_harness import Pampad, Sshd, disk_with_random_tail  # noqa: E402
from delay_proxy import DelayProxy  # noqa: E402

MiB = 1 << 20
RTT_MS = float(os.environ.get("BENCH_RTT_MS", "20"))
CHUNK = os.environ.get("BENCH_CHUNK", "")


def cold():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(fn):
    cold()
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def main():
    d = Pampad(subnet="10.218.0.0/24").start()
    sshd = Sshd(d.root)
    try:
        d.cli("vm", "create", "far", "--cpus", "1", "--memory", "128M", "--net", "none",
              "--disk-image", disk_with_random_tail(d, "far.raw", 384))
        os.remove(os.path.join(d.root, "far.raw"))
        vol = [v for v in d.cli_json("volume", "list", "default") if v["name"] == "far-disk0"][0]["path"]
        with open(os.path.join(d.root, "pass"), "w") as f:
            f.write("link bench passphrase")
        os.chmod(os.path.join(d.root, "pass"), 0o600)

        def run(port, hosts):
            d.cli("repo", "add", "far", "--url", f"sftp://root@127.0.0.1:{port}{d.root}/repo-far",
                  "--passphrase-file", os.path.join(d.root, "pass"), "--ssh-key", sshd.key, "--known-hosts", hosts,
                  *(["--chunk-size", CHUNK] if CHUNK else []))
            backup = ["backup", "run", "far", "--repo", "far", "--json"]
            first, r1 = timed(lambda: json.loads(d.cli(*backup, timeout=3600).stdout))
            for i in range(16):
                subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {i + 1} {(i * 61 + 5) * MiB} {MiB}", vol],
                               check=True, stdout=subprocess.DEVNULL)
            inc, r2 = timed(lambda: json.loads(d.cli(*backup, timeout=3600).stdout))
            restore, r3 = timed(lambda: json.loads(d.cli("backup", "restore", r2["id"], "--repo", "far", "--as",
                                                         "farr", "--json", timeout=3600).stdout))
            print(f"link: {RTT_MS:.0f} ms round trip, chunks {CHUNK or 'default'}, cold caches")
            print(f"first backup  {first:7.2f} s  ({r1['bytes_uploaded'] / MiB:.0f} MiB uploaded, "
                  f"{r1['bytes_uploaded'] / MiB / first:.1f} MiB/s)  stages {r1['stages']}")
            print(f"incremental   {inc:7.2f} s  ({r2['bytes_read'] / MiB:.0f} MiB read)")
            print(f"restore       {restore:7.2f} s  stages {r3['stages']}")

        if RTT_MS > 0:
            with DelayProxy("127.0.0.1", sshd.port, RTT_MS / 2) as link:
                with open(sshd.known_hosts) as f:
                    host_key = f.read().split(" ", 1)[1]
                hosts = os.path.join(d.root, "far_known_hosts")
                with open(hosts, "w") as f:
                    f.write(f"[127.0.0.1]:{link.port} {host_key}")
                run(link.port, hosts)
        else:
            run(sshd.port, sshd.known_hosts)
    finally:
        sshd.stop()
        d.destroy()


if __name__ == "__main__":
    main()
