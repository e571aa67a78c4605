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
  device, through a real sshd on loopback (one stream from the server: only data ranges are sent);
- P2V second pass after 8 scattered 4 KiB writes into the device: only the changed ranges are copied;
- the same device copied over the same sshd by hand, as an admin would without Pampa:
  `ssh root@server dd if=DEV bs=1M | dd of=COPY bs=1M`, and qemu-img convert reading it through
  qemu's own ssh driver (qemu-block-extra, installed here when missing; it reads the device's file,
  since it takes the size from SFTP, which says 0 for a device).
Goal: XVA and P2V within 1.3x of qemu-img convert's time. For P2V that is qemu-img convert of the
same disk where it is, on the server, over SSH: on one machine SSH itself is the bound (OpenSSH moves
~300 MB/s on these 2 cores, under a third of a local convert), so the local convert is printed too.
"""
import glob
import json
import os
import random
import shutil
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
RUNS = int(os.environ.get("BENCH_RUNS", "3"))  # convert, XVA and P2V: the median of this many runs


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


def median(fn, after, runs=RUNS):
    """The median time of runs runs of fn, each followed (untimed) by after."""
    times = []
    for _ in range(runs):
        times.append(timed(fn))
        after()
    return sorted(times)[len(times) // 2]


def make_disk(path):
    rnd = random.Random(7)
    pieces = DISK_MIB // 4
    with open(path, "wb") as f:
        f.truncate(DISK_MIB * MiB)
        for p in sorted(rnd.sample(range(pieces), int(pieces * FILL))):
            f.seek(p * 4 * MiB)
            f.write(os.urandom(4 * MiB))


def qemu_has_ssh():
    """True when qemu-img reads ssh:// sources (qemu-block-extra); installs it when missing."""
    def has():  # qemu-img --help names ssh even when the module that implements it is missing
        return bool(glob.glob("/usr/lib/*/qemu/block-ssh.so"))
    if not has() and shutil.which("apt-get"):
        print("installing qemu-block-extra (qemu's ssh driver) for the comparison...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "qemu-block-extra"], stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return has()


def main():
    work = tempfile.mkdtemp(prefix="import-bench-", dir="/var/tmp")
    disk = os.path.join(work, "disk.raw")
    make_disk(disk)
    rows = []
    rows.append(("dd (read + write every byte)", timed(lambda: subprocess.run(
        ["dd", f"if={disk}", f"of={work}/copy.raw", "bs=1M", "status=none"], check=True))))
    os.unlink(f"{work}/copy.raw")
    rows.append(("qemu-img convert -O qcow2", median(lambda: subprocess.run(
        ["qemu-img", "convert", "-O", "qcow2", disk, f"{work}/copy.qcow2"], check=True),
        lambda: os.unlink(f"{work}/copy.qcow2"))))

    d = Pampad()
    d.start()
    dev = None
    sshd = None
    try:
        xva = os.path.join(d.root, "disk.xva")
        write_xva(xva, [disk], label="bench", vcpus=1, memory=256 << 20, macs=[])
        rows.append(("pampa vm import --xva", median(lambda: d.cli("vm", "import", "x", "--xva", xva, timeout=3600),
                                                     lambda: d.cli("vm", "delete", "x"))))
        os.unlink(xva)

        dev = subprocess.run(["losetup", "--find", "--show", disk], check=True, capture_output=True,
                             text=True).stdout.strip()
        sshd = Sshd(d.root)
        p2v = ["--from-host", f"ssh://root@127.0.0.1:{sshd.port}", "--ssh-key", sshd.key,
               "--known-hosts", sshd.known_hosts]
        rows.append(("pampa vm import --from-host (P2V)", median(lambda: d.cli(
            "vm", "import", "p", "--disk", dev, *p2v, timeout=3600), lambda: d.cli("vm", "delete", "p"))))
        d.cli("vm", "import", "p", "--disk", dev, *p2v, timeout=3600)  # for the second pass
        ssh = ["ssh", "-i", sshd.key, "-o", f"UserKnownHostsFile={sshd.known_hosts}", "-o", "BatchMode=yes",
               "-p", str(sshd.port), "root@127.0.0.1"]
        by_hand = f"{work}/hand.raw"
        rows.append(("ssh dd | dd (by hand, every byte)", timed(lambda: subprocess.run(
            " ".join(ssh) + f" dd if={dev} bs=1M status=none | dd of={by_hand} bs=1M status=none",
            shell=True, check=True))))
        os.unlink(by_hand)
        if qemu_has_ssh():
            # The loop device's file: qemu's ssh driver takes the size from SFTP's stat, 0 for a device.
            source = "json:" + json.dumps({"driver": "raw", "file": {
                "driver": "ssh", "server": {"host": "127.0.0.1", "port": str(sshd.port)}, "path": disk,
                "user": "root", "host-key-check": {"mode": "none"}}})
            agent = subprocess.run(["ssh-agent", "-s"], check=True, capture_output=True, text=True).stdout
            env = dict(os.environ)
            for k in ("SSH_AUTH_SOCK", "SSH_AGENT_PID"):
                env[k] = agent.split(k + "=")[1].split(";")[0]
            subprocess.run(["ssh-add", "-q", sshd.key], env=env, check=True)
            try:
                rows.append(("qemu-img convert over ssh", timed(lambda: subprocess.run(
                    ["qemu-img", "convert", "-O", "qcow2", source, f"{work}/ssh.qcow2"], env=env, check=True))))
            finally:
                subprocess.run(["kill", env["SSH_AGENT_PID"]])
            os.unlink(f"{work}/ssh.qcow2")
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
    print(f"\nimport of a {DISK_MIB} MiB disk, {int(FILL * 100)}% data, cold caches (seconds, the median of {RUNS} "
          f"runs for convert, XVA and P2V; MiB/s of the disk)")
    print(f"{'step':40} {'s':>7} {'MiB/s':>8} {'x convert':>10}")
    for name, s in rows:
        print(f"{name:40} {s:7.2f} {DISK_MIB / s:8.0f} {s / convert:10.2f}")
    times = dict(rows)
    xva, p2v = times["pampa vm import --xva"], times["pampa vm import --from-host (P2V)"]
    print(f"goal (within {GOAL}x of qemu-img convert): XVA: {xva / convert:.2f}x, "
          f"{'met' if xva / convert <= GOAL else 'NOT met'}")
    over_ssh = times.get("qemu-img convert over ssh")
    if over_ssh:
        print(f"goal (within {GOAL}x of qemu-img convert of the same disk over SSH): P2V: {p2v / over_ssh:.2f}x, "
              f"{'met' if p2v / over_ssh <= GOAL else 'NOT met'}")
    hand = times["ssh dd | dd (by hand, every byte)"]
    print(f"P2V against a copy by hand over the same SSH: {p2v / hand:.2f}x; against a local convert: "
          f"{p2v / convert:.2f}x")


if __name__ == "__main__":
    main()
