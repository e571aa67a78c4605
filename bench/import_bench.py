#!/usr/bin/env python3
"""Import benchmark (make bench-import): how fast a XenServer XVA import and a P2V copy bring a disk in,
against the physical limit and against qemu-img convert of the same disk.

The disk: BENCH_DISK_MIB (default 2048) MiB, raw, BENCH_FILL (default 0.6) of it random data in 4 MiB
pieces scattered over the disk, the rest zeros (a used server disk: data here and there, free space
between). Every timed step starts after `sync; echo 3 > /proc/sys/vm/drop_caches` (cold caches, as an
import of a disk nobody read for days meets them) and ends with its data on disk (sync):
- dd: `dd if=DISK of=COPY bs=1M` and a sync: reading and writing every byte, the physical limit;
- qemu-img convert -O qcow2 DISK COPY.qcow2 (it skips zeros): the peer to beat;
- XVA: `pampa vm import --xva` of an XVA written from the disk (tests/integration/xva.py, as xapi writes
  one; not timed), every block's checksum checked;
- P2V: `pampa vm import --from-host ssh://root@127.0.0.1 --disk /dev/loopN` of the disk as a loop
  device, through a real sshd on loopback (the server hashes each MiB, only data ranges are sent);
- P2V second pass after 8 scattered 4 KiB writes into the device: only the changed ranges are copied.
Goal: XVA and P2V within 1.3x of qemu-img convert's time.
"""
import os
import random
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from pampa_harness import Pampad, Sshd  # noqa: E402
from xva import write_xva  # noqa: E402

MiB = 1 << 20
DISK_MIB = int(os.environ.get("BENCH_DISK_MIB", "2048"))
FILL = float(os.environ.get("BENCH_FILL", "0.6"))
GOAL = 1.3


def cold():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def timed(fn):
    cold()
    t0 = time.monotonic()
    fn()
    os.sync()
    return time.monotonic() - t0


def make_disk(path):
    rnd = random.Random(7)
    pieces = DISK_MIB // 4
    with open(path, "wb") as f:
        f.truncate(DISK_MIB * MiB)
        for p in sorted(rnd.sample(range(pieces), int(pieces * FILL))):
            f.seek(p * 4 * MiB)
            f.write(os.urandom(4 * MiB))


def main():
    work = tempfile.mkdtemp(prefix="import-bench-", dir="/var/tmp")
    disk = os.path.join(work, "disk.raw")
    make_disk(disk)
    rows = []
    rows.append(("dd (read + write every byte)", timed(lambda: subprocess.run(
        ["dd", f"if={disk}", f"of={work}/copy.raw", "bs=1M", "status=none"], check=True))))
    os.unlink(f"{work}/copy.raw")
    rows.append(("qemu-img convert -O qcow2", timed(lambda: subprocess.run(
        ["qemu-img", "convert", "-O", "qcow2", disk, f"{work}/copy.qcow2"], check=True))))
    os.unlink(f"{work}/copy.qcow2")

    d = Pampad()
    d.start()
    dev = None
    sshd = None
    try:
        xva = os.path.join(d.root, "disk.xva")
        write_xva(xva, [disk], label="bench", vcpus=1, memory=256 << 20, macs=[])
        rows.append(("pampa vm import --xva", timed(lambda: d.cli("vm", "import", "x", "--xva", xva,
                                                                  timeout=3600))))
        d.cli("vm", "delete", "x")
        os.unlink(xva)

        dev = subprocess.run(["losetup", "--find", "--show", disk], check=True, capture_output=True,
                             text=True).stdout.strip()
        sshd = Sshd(d.root)
        p2v = ["--from-host", f"ssh://root@127.0.0.1:{sshd.port}", "--ssh-key", sshd.key,
               "--known-hosts", sshd.known_hosts]
        rows.append(("pampa vm import --from-host (P2V)", timed(lambda: d.cli(
            "vm", "import", "p", "--disk", dev, *p2v, timeout=3600))))
        with open(dev, "r+b", buffering=0) as f:
            for k in range(8):
                f.seek(random.Random(k).randrange(DISK_MIB) * MiB)
                f.write(os.urandom(4096))
            os.fsync(f.fileno())
        rows.append(("P2V --second-pass (8 ranges changed)", timed(lambda: d.cli(
            "vm", "import", "p", "--second-pass", *p2v, timeout=3600))))
        d.cli("vm", "delete", "p")
    finally:
        if sshd:
            sshd.stop()
        if dev:
            subprocess.run(["losetup", "-d", dev])
        d.destroy()
        subprocess.run(["rm", "-rf", work])

    convert = rows[1][1]
    print(f"\nimport of a {DISK_MIB} MiB disk, {int(FILL * 100)}% data, cold caches (seconds; MiB/s of the disk)")
    print(f"{'step':40} {'s':>7} {'MiB/s':>8} {'x convert':>10}")
    for name, s in rows:
        print(f"{name:40} {s:7.2f} {DISK_MIB / s:8.0f} {s / convert:10.2f}")
    verdict = {name: s / convert <= GOAL for name, s in rows[2:4]}
    for name, ok in verdict.items():
        print(f"goal (within {GOAL}x of qemu-img convert): {name}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
