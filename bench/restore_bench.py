#!/usr/bin/env python3
"""Restore benchmark (make bench-restore): how soon a VM restored from a backup answers, full restore
against live restore, from the same backup.

The VM: 1 CPU, 256 MiB, no network, booting the test guest's kernel and initrd (QEMU in TCG, as in
the integration tests) from a 2 GiB qcow2 disk holding ~1.2 GiB of real files from /usr (the disk of
bench/backup_bench.py: ext4 on the whole device, which the guest mounts at /mnt as it boots). It is
backed up once (stopped) to an encrypted local repository, then restored from that backup twice:
- full: `pampa backup restore ID --as NEW` (returns when every disk is copied and synced), then
  `pampa vm start NEW`, then `pampa vm exec NEW -- true` until it succeeds;
- live: `pampa backup restore ID --as NEW --live` (returns once the VM runs, its disks read from the
  backup through pampa-backup-export while a task of type "live-restore-copy" copies them), then
  `pampa vm exec NEW -- true` until it succeeds; then the wait for that copy task to succeed.
Measured: seconds from the restore command to the guest agent's first answer, for each; the ratio
full/live; and the live copy's total time (its task's started..finished, and its end counted from the
restore command). Cold caches by default (BENCH_CACHE=cold, as in backup_bench): the page cache is
dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before each timed restore, as for a disaster restore
from a repository nobody touched for days; BENCH_CACHE=warm keeps it. The restored VM is deleted
between the runs.
The table also splits each time: when the restore command returned, and the boot (VM running to the
agent's answer; for live, while its copy runs beside it on the same 2 CPUs).
Then a restore drill of the same VM (make it, run it): the recovery time it records, and how long the
whole drill took.
Goal: a live restore answers in under 10 s of the command. (In TCG, as here, the guest's boot alone takes
about 9-12 s on this machine.)
Then, unless BENCH_RTT_MS=0 (default 20): the same two restores from the same VM's backup in a
repository over SFTP to a real sshd on loopback, through a relay that delays every byte RTT/2 each way
(bench/delay_proxy.py; this kernel has no netem): a restore from a server at another site (no goal).
BENCH_IMAGE=PATH reuses a disk image made by an earlier run instead of building one; BENCH_KEEP_LOG=PATH
keeps a copy of pampad's log (its directory is deleted at the end).
"""
import json
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from backup_bench import COLD, MiB, PASS, RTT_MS, du, far_known_hosts, make_image  # noqa: E402
from pampa_harness import APPEND, GUEST, Pampad, Sshd  # noqa: E402  (on sys.path through backup_bench)
from delay_proxy import DelayProxy  # noqa: E402

GOAL_S = 10.0
AGENT_TIMEOUT_S = 600  # a guest that does not answer in 10 minutes is a failure, not a data point
COPY_TIMEOUT_S = 3600


def drop_caches():
    """What backup_bench's timed() does before a timed step: nothing left to write back, and (cold) an
    empty page cache. No sync at the end here: the step ends at the agent's answer, not on disk.
    Prints the load average: on a 2-CPU machine anything else running shows in the numbers."""
    os.sync()
    if COLD:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    with open("/proc/loadavg") as f:
        print(f"  (load average before it: {' '.join(f.read().split()[:3])})", flush=True)


def wait_agent(d, vm, t0):
    """Runs `pampa vm exec VM -- true` until it succeeds; returns the seconds since t0 (monotonic) then.
    While the agent is not up, an attempt may wait up to ~10 s in pampad for the agent's sync answer; an
    agent that starts meanwhile answers at once, so the poll does not add that wait to the result."""
    deadline = time.monotonic() + AGENT_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        r = d.cli("vm", "exec", vm, "--", "true", check=False, timeout=120)
        if r.returncode == 0:
            return time.monotonic() - t0
        last = (r.stdout + r.stderr).strip()
        time.sleep(0.1)
    raise AssertionError(f"vm {vm}: no agent answer after {AGENT_TIMEOUT_S} s (last: {last}); console:\n"
                         f"{d.console(vm)[-2000:]}")


def copy_task(d, vm, task_id):
    """The live-restore-copy task of this VM (from task list), checked against the id restore printed."""
    tasks = [t for t in d.cli_json("task", "list") if t["type"] == "live-restore-copy" and t["target"] == vm]
    if not tasks:
        raise AssertionError(f"no live-restore-copy task for vm {vm} in pampa task list")
    if task_id and task_id not in [t["id"] for t in tasks]:
        raise AssertionError(f"restore printed copy task {task_id}, task list has {[t['id'] for t in tasks]}")
    return task_id or tasks[-1]["id"]


def delete_vm(d, vm):
    d.cli("vm", "stop", vm, timeout=120)
    d.cli("vm", "delete", vm, timeout=120)


def full_restore(d, backup, repo, vm):
    drop_caches()
    t0 = time.monotonic()
    res = json.loads(d.cli("backup", "restore", backup, "--repo", repo, "--as", vm, "--json", timeout=3600).stdout)
    restored = time.monotonic() - t0
    d.cli("vm", "start", vm, timeout=300)
    started = time.monotonic() - t0
    answered = wait_agent(d, vm, t0)
    delete_vm(d, vm)
    return {"answer": answered, "command": restored, "started": started, "pampad_seconds": res.get("seconds")}


def live_restore(d, backup, repo, vm):
    drop_caches()
    t0_wall = time.time()
    t0 = time.monotonic()
    out = d.cli("backup", "restore", backup, "--repo", repo, "--as", vm, "--live", timeout=3600).stdout
    running = time.monotonic() - t0
    if "runs from backup" not in out:
        raise AssertionError(f"live restore did not say the VM runs from the backup:\n{out}")
    answered = wait_agent(d, vm, t0)
    m = re.search(r"pampa task show (\S+)", out)
    task = copy_task(d, vm, m.group(1) if m else None)
    deadline = time.monotonic() + COPY_TIMEOUT_S
    while True:
        t = d.cli_json("task", "show", task)
        if t["state"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if t["state"] != "succeeded":
        raise AssertionError(f"live restore copy task {task} of vm {vm} is {t['state']}, not succeeded:\n"
                             f"{d.cli('task', 'show', task, check=False).stdout}")
    delete_vm(d, vm)
    return {"answer": answered, "command": running, "copy_task": task,
            "copy_total": (t["finished"] - t["started"]) / 1000.0,
            "copy_end": t["finished"] / 1000.0 - t0_wall,
            "copy_start": t["started"] / 1000.0 - t0_wall}


def drill(d):
    """A restore drill of the same VM (its latest backup to a scratch VM): the recovery time it records."""
    out = d.cli("backup", "drill", "add", "src", "--repo", "local", "--weekly", "sun", "03:00").stdout
    drill_id = out.split()[1].rstrip(":")
    drop_caches()
    t0 = time.monotonic()
    d.cli("backup", "drill", "run", drill_id, timeout=3600)
    total = time.monotonic() - t0
    got = [x for x in d.cli_json("backup", "drill", "list") if x["id"] == drill_id][0]
    print(f"restore drill {drill_id}: recovery time (start to the agent answering) "
          f"{got['last_recovery_seconds']:.1f} s; the whole drill (every chunk read back, scratch VM deleted) "
          f"{total:.1f} s", flush=True)
    d.cli("backup", "drill", "remove", drill_id)


def cell(v, width=10):
    return f"{v:{width}.2f}" if v < 10 else f"{v:{width}.1f}"


def table(title, full, live):
    print(title)
    print(f"  {'':40s}{'full':>10s}{'live':>10s}")
    print(f"  {'restore command returned (s)':40s}{cell(full['command'])}{cell(live['command'])}"
          "   (full: disks copied; live: VM running)")
    print(f"  {'vm start returned (s)':40s}{cell(full['started'])}{'-':>10s}")
    print(f"  {'VM running -> agent answer (s)':40s}{cell(full['answer'] - full['started'])}"
          f"{cell(live['answer'] - live['command'])}   (the boot; live: while its copy runs)")
    ratio = full["answer"] / live["answer"]
    print(f"  {'first agent answer (s)':40s}{cell(full['answer'])}{cell(live['answer'])}"
          f"   full/live = {ratio:.1f}x")
    print(f"  live copy (task {live['copy_task']}): {live['copy_total']:.1f} s in its task (started "
          f"{live['copy_start']:.1f} s after the command), done {live['copy_end']:.1f} s after the command")


def main():
    work = tempfile.mkdtemp(prefix="prbench-", dir="/var/tmp")
    d = Pampad(subnet="10.218.0.0/24")
    sshd = None
    try:
        d.start()
        print("building the 2 GiB test disk with ~1.2 GiB of files ...", flush=True)
        if os.environ.get("BENCH_IMAGE"):
            image, files = os.environ["BENCH_IMAGE"], 1200 * MiB
        else:
            image, files = make_image(work)
        print(f"disk: {du(image) / MiB:.0f} MiB allocated, {files / MiB:.0f} MiB of files")
        disk = os.path.join(d.root, "src.qcow2")
        shutil.copy(image, disk)
        d.cli("vm", "create", "src", "--cpus", "1", "--memory", "256M", "--net", "none", "--disk-image", disk,
              "--kernel", os.path.join(GUEST, "vmlinuz"), "--initrd", os.path.join(GUEST, "initrd.img"),
              "--append", APPEND)
        d.add_passphrase_repo("local", PASS)
        t = time.monotonic()
        backup = json.loads(d.cli("backup", "run", "src", "--repo", "local", "--json", timeout=3600).stdout)["id"]
        print(f"backup {backup} of the stopped VM in {time.monotonic() - t:.1f} s", flush=True)

        print("full restore ...", flush=True)
        full = full_restore(d, backup, "local", "rfull")
        print("live restore ...", flush=True)
        live = live_restore(d, backup, "local", "rlive")
        print()
        table(f"restore from a local repository to the guest agent's first answer (cold={COLD}):", full, live)
        ok = live["answer"] < GOAL_S
        print(f"goal: live restore answers in under {GOAL_S:.0f} s of the command: "
              f"{'MET' if ok else 'MISSED'} ({live['answer']:.2f} s)", flush=True)
        drill(d)

        if RTT_MS > 0:
            print()
            sshd = Sshd(work)
            with DelayProxy("127.0.0.1", sshd.port, RTT_MS / 2) as link:
                far_hosts = far_known_hosts(sshd, link, work)
                pass_file = os.path.join(d.root, "local-passphrase")
                d.cli("repo", "add", "far", "--url", f"sftp://root@127.0.0.1:{link.port}{work}/pampa-far",
                      "--passphrase-file", pass_file, "--ssh-key", sshd.key, "--known-hosts", far_hosts)
                t = time.monotonic()
                far_backup = json.loads(d.cli("backup", "run", "src", "--repo", "far", "--json",
                                              timeout=3600).stdout)["id"]
                print(f"backup {far_backup} over SFTP ({RTT_MS:.0f} ms round trip) in {time.monotonic() - t:.1f} s",
                      flush=True)
                print("full restore over SFTP ...", flush=True)
                far_full = full_restore(d, far_backup, "far", "ffull")
                print("live restore over SFTP ...", flush=True)
                far_live = live_restore(d, far_backup, "far", "flive")
            print()
            table(f"the same over SFTP with a {RTT_MS:.0f} ms round trip (a relay delaying each way; no goal):",
                  far_full, far_live)
    except BaseException:
        if os.path.exists(d.log):  # the log goes with pampad's directory: show its end first
            with open(d.log) as f:
                print("pampad log, last lines:\n" + "".join(f.readlines()[-30:]), file=sys.stderr)
        raise
    finally:
        if os.path.exists(d.log):
            with open(d.log) as f:
                noted = [line.rstrip() for line in f if re.match(r"\S+ (warn|error) ", line)]
            if noted:
                print(f"pampad log: {len(noted)} warning/error line(s), the last ones:")
                for line in noted[-15:]:
                    print("  " + line)
            if os.environ.get("BENCH_KEEP_LOG"):  # a copy of pampad's log, which goes with its directory
                shutil.copy(d.log, os.environ["BENCH_KEEP_LOG"])
        if sshd:
            sshd.stop()
        d.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
