#!/usr/bin/env python3
"""Backup benchmark (make bench-backup): Pampa against restic and borg from
Debian, same image, same run, compression and encryption on for all three.

A 2 GiB qcow2 disk holding ~1.2 GiB of real files (from /usr); then ~2% of it
changed. Measured: first backup, incremental backup, restore, repository size.
restic and borg back up the image file (they cannot see inside a VM); Pampa
backs up the VM's disk through its dirty bitmap.
Goals: first backup >= 2x faster than both, incremental >= 10x faster than both,
restore >= 2x faster than restic, repository no larger than restic's.
Then the same changed image once more to a real sshd on loopback (the daily
backup to a remote server; here the server shares this machine's CPUs): first,
incremental, restore and size over SSH, Pampa with 1 and 4 MiB chunks, restic
(sftp) and borg (ssh + borg serve), the same goals.
Also, Pampa only: the same steps into a repository with 4 MiB chunks (the default
before 1 MiB: each scattered MiB then dirties 4 MiB instead of 1), and the same disk in a running guest (the hot path through
QEMU's fleecing export, with fsfreeze through the guest agent).
Every timed step starts with nothing to write back and ends when what it wrote
is on disk (sync). Cold caches by default (BENCH_CACHE=cold): before each timed
step the page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches), as for
a nightly backup of disks nobody read and a disaster restore from a repository
nobody touched for days; BENCH_CACHE=warm keeps it. Last, over a link between
sites (BENCH_RTT_MS, default 20; 0 skips it): the same SSH steps through a TCP
relay on loopback that delays every byte RTT/2 each way (bench/delay_proxy.py;
this kernel has no netem). --pampa-only skips the peers (profiling).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../tests/integration"))
from pampa_harness import APPEND, GUEST, Pampad, Sshd  # noqa: E402
from delay_proxy import DelayProxy  # noqa: E402

MiB = 1 << 20
PASS = "bench passphrase 1234"
COLD = os.environ.get("BENCH_CACHE", "cold") != "warm"
RTT_MS = float(os.environ.get("BENCH_RTT_MS", "20"))


def sh(*argv, env=None, **kw):
    return subprocess.run(argv, check=True, env=env, **kw)


def timed(fn):
    # Every timed step starts with nothing left to write back (no tool pays for
    # what the previous step or the setup wrote) and ends when what it wrote is
    # on disk: restic and borg leave restored files in the page cache for the
    # kernel to write later, Pampa syncs before it answers.
    os.sync()
    if COLD:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    t0 = time.monotonic()
    fn()
    os.sync()
    return time.monotonic() - t0


def cell(v):
    """A table cell: two decimals below 10 (an incremental's 0.38 s is not 0.4 s), one above."""
    return f"{v:12.2f}" if v < 10 else f"{v:12.1f}"


def du(path):
    return int(subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0])


def make_image(work):
    """A 2 GiB ext4 disk with ~1.2 GiB of real files, as qcow2."""
    staging = os.path.join(work, "staging")
    os.makedirs(staging)
    total, limit = 0, 1200 * MiB
    for top in ("/usr/share", "/usr/bin", "/usr/lib"):
        for root, _, files in os.walk(top):
            for f in files:
                src = os.path.join(root, f)
                if os.path.islink(src) or not os.path.isfile(src):
                    continue
                size = os.path.getsize(src)
                if total + size > limit:
                    continue
                dst = os.path.join(staging, os.path.relpath(src, "/"))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                try:
                    shutil.copyfile(src, dst)
                except OSError:
                    continue
                total += size
            if total >= limit - MiB:
                break
    raw = os.path.join(work, "disk.raw")
    sh("truncate", "-s", "2G", raw)
    sh("mkfs.ext4", "-q", "-F", "-d", staging, raw)
    shutil.rmtree(staging)
    image = os.path.join(work, "disk.qcow2")
    sh("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, image)
    os.unlink(raw)
    return image, total


def change_two_percent(image, work):
    """Overwrites ~2% of the disk (40 MiB, 1 MiB pieces spread over the used part) with new random data."""
    pattern = os.path.join(work, "pattern")
    for i in range(40):
        with open(pattern, "wb") as f:
            f.write(os.urandom(MiB))
        offset = (i * 29 + 7) * MiB % (1200 * MiB)
        sh("qemu-io", "-f", "qcow2", "-c", f"write -s {pattern} {offset} {MiB}", image, stdout=subprocess.DEVNULL)


def far_known_hosts(sshd, link, work):
    """A known_hosts file naming sshd's key at the relay's port (what a client of the far site trusts)."""
    with open(sshd.known_hosts) as f:
        host_key = f.read().split(" ", 1)[1]
    path = os.path.join(work, "far_known_hosts")
    with open(path, "w") as f:
        f.write(f"[127.0.0.1]:{link.port} {host_key}")
    return path


def over_ssh(d, sshd, port, known_hosts, tag, work, pass_file, env, src_dir, target, rout, vol, vol4m, results):
    """First, incremental, restore and size over SSH to sshd at port (straight, or through a relay), as
    results[(tool, tag + " " + step)]: Pampa with 1 and 4 MiB chunks (VMs bench and bench4m), restic (sftp) and
    borg (borg serve), each to a fresh repository."""
    ssh = (f"ssh -p {port} -i {sshd.key} -o UserKnownHostsFile={known_hosts} -o BatchMode=yes "
           "-o StrictHostKeyChecking=yes")
    pampas = (("pampa", "bench", vol, []), ("pampa 4 MiB", "bench4m", vol4m, ["--chunk-size", "4M"]))
    for label, vm, _, chunk in pampas:
        d.cli("repo", "add", f"{tag}-{vm}", "--url", f"sftp://root@127.0.0.1:{port}{work}/pampa-{tag}-{vm}",
              "--passphrase-file", pass_file, "--ssh-key", sshd.key, "--known-hosts", known_hosts, *chunk)
        results[(label, tag + " first")] = timed(lambda: d.cli("backup", "run", vm, "--repo", f"{tag}-{vm}",
                                                               timeout=3600))
    srepo = f"sftp:root@127.0.0.1:{work}/restic-{tag}"
    sopt = ["-o", f"sftp.command={ssh} root@127.0.0.1 -s sftp"]
    sh("restic", "init", "--repository-version", "2", "--repo", srepo, *sopt, env=env, stdout=subprocess.DEVNULL)
    benv = dict(env, BORG_RSH=ssh)
    brs = f"ssh://root@127.0.0.1:{port}{work}/borg-{tag}"
    sh("borg", "init", "--encryption", "repokey-blake2", brs, env=benv, stderr=subprocess.DEVNULL)
    shutil.copy(vol, target)
    results[("restic", tag + " first")] = timed(lambda: sh("restic", "--repo", srepo, *sopt, "backup",
                                                           "--compression", "auto", src_dir, env=env,
                                                           stdout=subprocess.DEVNULL))
    results[("borg", tag + " first")] = timed(lambda: sh("borg", "create", "--compression", "zstd,3", brs + "::a",
                                                         src_dir, env=benv))
    # A day of changes, then the incrementals.
    for _, _, disk, _ in pampas:
        change_two_percent(disk, work)
    incs = {}
    for label, vm, _, _ in pampas:
        results[(label, tag + " incremental")] = timed(lambda: incs.update({vm: json.loads(
            d.cli("backup", "run", vm, "--repo", f"{tag}-{vm}", "--json", timeout=3600).stdout)}))
    shutil.copy(vol, target)
    results[("restic", tag + " incremental")] = timed(lambda: sh("restic", "--repo", srepo, *sopt, "backup",
                                                                 "--compression", "auto", src_dir, env=env,
                                                                 stdout=subprocess.DEVNULL))
    results[("borg", tag + " incremental")] = timed(lambda: sh("borg", "create", "--compression", "zstd,3",
                                                               brs + "::b", src_dir, env=benv))
    for label, vm, _, _ in pampas:
        results[(label, tag + " restore")] = timed(lambda: d.cli("backup", "restore", incs[vm]["id"], "--repo",
                                                                 f"{tag}-{vm}", "--as", vm + tag, timeout=3600))
    shutil.rmtree(rout, ignore_errors=True)
    results[("restic", tag + " restore")] = timed(lambda: sh("restic", "--repo", srepo, *sopt, "restore", "latest",
                                                             "--target", rout, env=env, stdout=subprocess.DEVNULL))
    shutil.rmtree(rout, ignore_errors=True)
    bout = os.path.join(work, f"borg-{tag}-out")
    os.makedirs(bout)
    results[("borg", tag + " restore")] = timed(lambda: sh("borg", "extract", brs + "::b", env=benv, cwd=bout))
    shutil.rmtree(bout)
    for label, repo in (("pampa", f"pampa-{tag}-bench"), ("pampa 4 MiB", f"pampa-{tag}-bench4m"),
                        ("restic", f"restic-{tag}"), ("borg", f"borg-{tag}")):
        results[(label, tag + " size")] = du(os.path.join(work, repo))


def over_a_link(d, sshd, work, *args):
    """over_ssh through a relay that delays each way by RTT_MS / 2."""
    with DelayProxy("127.0.0.1", sshd.port, RTT_MS / 2) as link:
        over_ssh(d, sshd, link.port, far_known_hosts(sshd, link, work), "far", work, *args)


def ssh_table(results, tag, title):
    print(f"{title}, cold={COLD}:")
    print(f"{'':14s}{'pampa':>12s}{'pampa 4 MiB':>12s}{'restic':>12s}{'borg':>12s}   pampa vs restic / borg")
    for what, goal in (("first", "goal >= 2x"), ("incremental", "goal >= 10x"), ("restore", "goal >= 2x vs restic"),
                       ("size", "goal <= 1x restic")):
        vals = [results[(t, tag + " " + what)] for t in ("pampa", "pampa 4 MiB", "restic", "borg")]
        if what == "size":
            print(f"{'size (MiB)':14s}" + "".join(cell(v / MiB) for v in vals) +
                  f"   {vals[0] / vals[2]:.2f}x / {vals[0] / vals[3]:.2f}x the size  ({goal})")
        else:
            print(f"{what + ' (s)':14s}" + "".join(cell(v) for v in vals) +
                  f"   {vals[2] / vals[0]:.1f}x / {vals[3] / vals[0]:.1f}x faster  ({goal})")


def main():
    pampa_only = "--pampa-only" in sys.argv[1:]  # for profiling: skip restic and borg
    for tool in () if pampa_only else ("restic", "borg"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install restic borgbackup")
    work = tempfile.mkdtemp(prefix="pbench-", dir="/var/tmp")
    d = Pampad(subnet="10.217.0.0/24")
    d.start()
    try:
        print("building the 2 GiB test disk with ~1.2 GiB of files ...", flush=True)
        if os.environ.get("BENCH_IMAGE"):  # reuse a disk made by an earlier run (for profiling)
            image, files = os.environ["BENCH_IMAGE"], 1200 * MiB
        else:
            image, files = make_image(work)
        print(f"disk: {du(image) / MiB:.0f} MiB allocated, {files / MiB:.0f} MiB of files")
        pass_file = os.path.join(work, "pass")
        with open(pass_file, "w") as f:
            f.write(PASS)
        os.chmod(pass_file, 0o600)
        env = dict(os.environ, RESTIC_PASSWORD=PASS, BORG_PASSPHRASE=PASS, RESTIC_CACHE_DIR=os.path.join(work, "rc"),
                   BORG_BASE_DIR=os.path.join(work, "bb"), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")
        results = {}

        # --- Pampa: the disk belongs to a (stopped) VM; backups read it through qemu-nbd.
        shutil.copy(image, os.path.join(d.root, "bench.qcow2"))
        d.cli("vm", "create", "bench", "--cpus", "1", "--memory", "256M", "--net", "none",
              "--disk-image", os.path.join(d.root, "bench.qcow2"))
        vol = [v for v in d.cli_json("volume", "list", "default") if v["name"] == "bench-disk0"][0]["path"]
        prepo = os.path.join(work, "pampa-repo")
        d.cli("repo", "add", "bench", "--url", prepo, "--passphrase-file", pass_file)
        first = {}
        results[("pampa", "first")] = timed(lambda: first.update(json.loads(
            d.cli("backup", "run", "bench", "--repo", "bench", "--json", timeout=3600).stdout)))
        change_two_percent(vol, work)
        inc = {}
        results[("pampa", "incremental")] = timed(lambda: inc.update(json.loads(
            d.cli("backup", "run", "bench", "--repo", "bench", "--json", timeout=3600).stdout)))
        rest = {}
        results[("pampa", "restore")] = timed(lambda: rest.update(json.loads(
            d.cli("backup", "restore", inc["id"], "--repo", "bench", "--as", "benchr", "--json", timeout=3600).stdout)))
        results[("pampa", "size")] = du(prepo)
        for name, r in (("first", first), ("incremental", inc)):
            st = r["stages"]
            print(f"pampa {name}: read {r['bytes_read'] / MiB:.0f} MiB, uploaded {r['bytes_uploaded'] / MiB:.0f} MiB; "
                  f"stage seconds (summed over threads) read {st['read']['seconds']:.2f}, compress+encrypt "
                  f"{st['compress_encrypt']['seconds']:.2f}, upload {st['upload']['seconds']:.2f}; "
                  f"slowest {r['slowest_stage']}; {r['seconds']:.2f} s in pampad")
        st = rest["stages"]
        print(f"pampa restore: stage seconds (summed over threads) fetch {st['fetch']:.2f}, decrypt+decompress "
              f"{st['open']:.2f}, write {st['write']:.2f}; {rest['seconds']:.2f} s in pampad")

        # --- The same steps with 4 MiB chunks (repo add --chunk-size 4M; the default before 1 MiB): each
        # scattered MiB written then dirties 4 MiB instead of 1.
        shutil.copy(image, os.path.join(d.root, "bench4m.qcow2"))
        d.cli("vm", "create", "bench4m", "--cpus", "1", "--memory", "256M", "--net", "none",
              "--disk-image", os.path.join(d.root, "bench4m.qcow2"))
        vol4m = [v for v in d.cli_json("volume", "list", "default") if v["name"] == "bench4m-disk0"][0]["path"]
        repo4m = os.path.join(work, "pampa-4m")
        d.cli("repo", "add", "bench4m", "--url", repo4m, "--passphrase-file", pass_file, "--chunk-size", "4M")
        results[("pampa 4 MiB", "first")] = timed(lambda: d.cli("backup", "run", "bench4m", "--repo", "bench4m",
                                                                timeout=3600))
        change_two_percent(vol4m, work)
        inc4m = {}
        results[("pampa 4 MiB", "incremental")] = timed(lambda: inc4m.update(json.loads(
            d.cli("backup", "run", "bench4m", "--repo", "bench4m", "--json", timeout=3600).stdout)))
        results[("pampa 4 MiB", "restore")] = timed(lambda: d.cli("backup", "restore", inc4m["id"], "--repo",
                                                                  "bench4m", "--as", "bench4mr", timeout=3600))
        results[("pampa 4 MiB", "size")] = du(repo4m)

        # --- The same disk in a running guest: the hot path (fleecing + QEMU's NBD export), Pampa only.
        shutil.copy(image, os.path.join(d.root, "benchrun.qcow2"))
        d.cli("vm", "create", "benchrun", "--cpus", "1", "--memory", "256M", "--net", "none", "--disk-image",
              os.path.join(d.root, "benchrun.qcow2"), "--kernel", os.path.join(GUEST, "vmlinuz"), "--initrd",
              os.path.join(GUEST, "initrd.img"), "--append", APPEND)
        d.cli("vm", "start", "benchrun")
        d.wait_console("benchrun", "pampa-guest: ready")
        d.cli("repo", "add", "run", "--url", os.path.join(work, "pampa-run"), "--passphrase-file", pass_file)
        hot, hot_inc = {}, {}
        results[("pampa", "running first")] = timed(lambda: hot.update(json.loads(
            d.cli("backup", "run", "benchrun", "--repo", "run", "--json", timeout=3600).stdout)))
        # The same 40 scattered MiB as above, written by the guest to its disk.
        offsets = " ".join(str((i * 29 + 7) % 1200) for i in range(40))
        d.exec("benchrun", "sh", "-c", f"for o in {offsets}; do dd if=/dev/urandom of=/dev/vda bs=1M count=1 "
               "seek=$o conv=notrunc 2>/dev/null; done; sync")
        results[("pampa", "running incremental")] = timed(lambda: hot_inc.update(json.loads(
            d.cli("backup", "run", "benchrun", "--repo", "run", "--json", timeout=3600).stdout)))
        d.cli("vm", "stop", "benchrun")
        print(f"pampa, running guest: first {results[('pampa', 'running first')]:.2f} s "
              f"({hot['consistency'].split(' (')[0]}), incremental {results[('pampa', 'running incremental')]:.2f} s "
              f"reading {hot_inc['bytes_read'] / MiB:.0f} MiB")

        if pampa_only:
            print({f"{k[0]} {k[1]}": round(v / MiB, 1) if k[1] == "size" else round(v, 2) for k, v in results.items()})
            return

        # The same changed image for the file-level tools: first the original, then the changed one.
        changed = os.path.join(work, "changed.qcow2")
        shutil.copy(vol, changed)
        src_dir = os.path.join(work, "src")
        os.makedirs(src_dir)
        target = os.path.join(src_dir, "disk.qcow2")

        # --- restic (repository v2: zstd compression; AES-256 always)
        rrepo = os.path.join(work, "restic-repo")
        sh("restic", "init", "--repository-version", "2", "--repo", rrepo, env=env, stdout=subprocess.DEVNULL)
        shutil.copy(image, target)
        results[("restic", "first")] = timed(lambda: sh("restic", "--repo", rrepo, "backup", "--compression", "auto",
                                                        src_dir, env=env, stdout=subprocess.DEVNULL))
        shutil.copy(changed, target)
        results[("restic", "incremental")] = timed(lambda: sh("restic", "--repo", rrepo, "backup", "--compression",
                                                              "auto", src_dir, env=env, stdout=subprocess.DEVNULL))
        rout = os.path.join(work, "restic-out")
        results[("restic", "restore")] = timed(lambda: sh("restic", "--repo", rrepo, "restore", "latest", "--target",
                                                          rout, env=env, stdout=subprocess.DEVNULL))
        results[("restic", "size")] = du(rrepo)
        shutil.rmtree(rout)

        # --- borg (repokey-blake2 encryption, zstd level 3)
        brepo = os.path.join(work, "borg-repo")
        sh("borg", "init", "--encryption", "repokey-blake2", brepo, env=env)
        shutil.copy(image, target)
        results[("borg", "first")] = timed(lambda: sh("borg", "create", "--compression", "zstd,3", brepo + "::a",
                                                      src_dir, env=env))
        shutil.copy(changed, target)
        results[("borg", "incremental")] = timed(lambda: sh("borg", "create", "--compression", "zstd,3",
                                                            brepo + "::b", src_dir, env=env))
        bout = os.path.join(work, "borg-out")
        os.makedirs(bout)
        results[("borg", "restore")] = timed(lambda: sh("borg", "extract", brepo + "::b", env=env, cwd=bout))
        results[("borg", "size")] = du(brepo)

        # --- The same changed image over SSH, each tool to a fresh repository on a loopback sshd.
        sshd = Sshd(work)
        over_ssh(d, sshd, sshd.port, sshd.known_hosts, "ssh", work, pass_file, env, src_dir, target, rout, vol, vol4m,
                 results)
        if RTT_MS > 0:
            over_a_link(d, sshd, work, pass_file, env, src_dir, target, rout, vol, vol4m, results)
        sshd.stop()

        print()
        print(f"{'':14s}{'pampa':>12s}{'restic':>12s}{'borg':>12s}   pampa vs restic / borg")
        for what, unit, goal in (("first", "s", "goal >= 2x"), ("incremental", "s", "goal >= 10x"),
                                 ("restore", "s", "goal >= 2x vs restic"), ("size", "MiB", "goal <= 1x restic")):
            vals = [results[(t, what)] for t in ("pampa", "restic", "borg")]
            shown = [v / MiB if unit == "MiB" else v for v in vals]
            if what == "size":
                ratio = f"{vals[0] / vals[1]:.2f}x / {vals[0] / vals[2]:.2f}x the size"
            else:
                ratio = f"{vals[1] / vals[0]:.1f}x / {vals[2] / vals[0]:.1f}x faster"
            print(f"{what + ' (' + unit + ')':14s}" + "".join(cell(v) for v in shown) + f"   {ratio}  ({goal})")
        print("pampa with 4 MiB chunks (repo add --chunk-size 4M; the default before), against the same restic run:")
        for what, unit in (("first", "s"), ("incremental", "s"), ("restore", "s"), ("size", "MiB")):
            v, ref = results[("pampa 4 MiB", what)], results[("restic", what)]
            shown = cell(v / MiB if unit == "MiB" else v)
            ratio = f"{v / ref:.2f}x the size of restic's" if what == "size" else f"{ref / v:.1f}x faster than restic"
            print(f"{what + ' (' + unit + ')':14s}{shown}   {ratio}")
        ssh_table(results, "ssh", "over SSH to a loopback sshd (the server shares the 2 CPUs)")
        if RTT_MS > 0:
            ssh_table(results, "far", f"over SSH with a {RTT_MS:.0f} ms round trip (a relay delaying each way)")
    finally:
        d.teardown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
