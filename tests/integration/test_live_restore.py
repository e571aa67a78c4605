"""Live restore of a real guest from a real repository: the VM answers its agent while its disks are
still being copied, its writes survive a stop/start and a kill -9 of pampad mid-copy, the copy ends
with volumes that no longer need the backup and hold what it held, and a chunk the repository lost
is an I/O error in the guest and a failed copy that names it, never other data."""
import json
import os
import subprocess
import time

import pytest

from pampa_harness import processes


def guest_md5(d, vm, what):
    return d.exec(vm, "sh", "-c", f"md5sum {what} | cut -d' ' -f1").stdout.strip()


def export_pids(d):
    return [pid for pid, cmd in processes() if cmd[0].endswith("pampa-backup-export") and d.root in " ".join(cmd)]


def backing_of(path):
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path],
                                     capture_output=True, text=True, check=True).stdout)
    return info.get("backing-filename", "")


def copy_task(d, vm):
    tasks = [t for t in d.cli_json("task", "list") if t["type"] == "live-restore-copy" and t["target"] == vm]
    return tasks[-1] if tasks else None


@pytest.fixture(scope="module")
def lr(pampad):
    d = pampad
    d.create_guest("lr", "--net", "none", "--disk", "64M")
    d.cli("vm", "start", "lr")
    d.wait_console("lr", "pampa-guest: ready")
    # Files in the guest's file system, and a second disk of incompressible data it does not mount.
    d.exec("lr", "sh", "-c", "mkdir -p /mnt/data && dd if=/dev/urandom of=/mnt/data/a bs=1M count=4 2>/dev/null"
           " && dd if=/dev/urandom of=/dev/vdb bs=1M count=48 2>/dev/null && sync")
    d.lr_files = guest_md5(d, "lr", "/mnt/data/a")
    d.lr_vdb = guest_md5(d, "lr", "/dev/vdb")
    d.lr_repo = d.add_passphrase_repo("lr", "live restore passphrase")
    d.lr_backup = json.loads(d.cli("backup", "run", "lr", "--repo", "lr", "--json").stdout)["id"]
    d.cli("vm", "stop", "lr")
    yield d
    for vm in ("lr", "lrl", "lrx", "lrr", "lrs", "lrbig"):
        d.cli("vm", "stop", vm, check=False)
        d.cli("vm", "delete", vm, check=False)


def test_live_restore_runs_before_its_copy_ends_and_keeps_its_writes_through_restarts(lr):
    d = lr
    t0 = time.time()
    # disk0 is 1 GiB: at 24 MiB/s its copy takes ~45 s, far longer than a boot.
    out = d.cli("backup", "restore", d.lr_backup, "--repo", "lr", "--as", "lrl", "--live", "--bwlimit", "24M").stdout
    assert "runs from backup" in out and "pampa task show" in out, out
    assert d.vm("lrl")["state"] == "running"
    d.wait_console("lrl", "pampa-guest: ready")
    assert d.exec("lrl", "true").returncode == 0
    answered = time.time() - t0
    task = copy_task(d, "lrl")
    assert task and task["state"] == "running", task
    assert len(export_pids(d)) == 1
    paths = d.volume_paths()
    assert backing_of(paths["lrl-disk0"]).startswith("json:")
    # The guest sees the backup's data, and writes its own.
    assert guest_md5(d, "lrl", "/mnt/data/a") == d.lr_files
    d.exec("lrl", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/during bs=64k count=16 2>/dev/null; sync")
    during = guest_md5(d, "lrl", "/mnt/data/during")

    # A stop and a start mid-copy: the writes stay, the copy goes on once it runs.
    d.cli("vm", "stop", "lrl")
    d.cli("vm", "start", "lrl")
    d.wait_console("lrl", "pampa-guest: ready")
    assert guest_md5(d, "lrl", "/mnt/data/during") == during

    # kill -9 of pampad mid-copy: the VM and the export server keep running; a new pampad watches the copy again.
    export = export_pids(d)
    d.kill9()
    time.sleep(1)
    assert export_pids(d) == export
    d.start()
    assert d.vm("lrl")["state"] == "running"
    resumed = None
    deadline = time.time() + 20
    while resumed is None and time.time() < deadline:
        t = copy_task(d, "lrl")
        resumed = t if t and t["id"] != task["id"] else None
        time.sleep(0.5)
    assert resumed, "no copy task after the restart"
    done = d.wait_task(resumed["id"], timeout=240)
    assert done["state"] == "succeeded", done
    assert answered < done["finished"] / 1000 - t0

    # The copy is over: no export server, no backing, and the data is the backup's plus the guest's writes.
    assert export_pids(d) == []
    for vol in ("lrl-disk0", "lrl-disk1"):
        assert backing_of(paths[vol]) == ""
    assert guest_md5(d, "lrl", "/mnt/data/during") == during
    assert guest_md5(d, "lrl", "/mnt/data/a") == d.lr_files
    assert guest_md5(d, "lrl", "/dev/vdb") == d.lr_vdb
    d.cli("vm", "stop", "lrl")
    d.cli("vm", "delete", "lrl")


def test_a_chunk_the_repository_lost_is_an_io_error_in_the_guest_and_a_failed_copy(lr):
    d = lr
    manifest = d.cli_json("backup", "show", d.lr_backup, "--repo", "lr")
    assert manifest["disks"][1]["data_chunks"] > 0
    chunks = []
    for root, _, files in os.walk(os.path.join(d.lr_repo, "chunks")):
        chunks += [os.path.join(root, f) for f in files]
    # The VM boots from the backup (its copy crawling at 1 MiB/s), then the repository loses its
    # chunks: a read of vdb's last MiBs, not yet copied, reaches the repository.
    d.cli("backup", "restore", d.lr_backup, "--repo", "lr", "--as", "lrx", "--live", "--bwlimit", "1M")
    d.wait_console("lrx", "pampa-guest: ready")
    hidden = os.path.join(d.root, "hidden-chunks")
    os.makedirs(hidden, exist_ok=True)
    for c in chunks:
        os.rename(c, os.path.join(hidden, os.path.basename(c)))
    try:
        r = d.exec("lrx", "sh", "-c", "dd if=/dev/vdb of=/dev/null bs=1M skip=40 count=8", check=False)
        assert r.returncode != 0 and "Input/output error" in (r.stdout + r.stderr), r.stdout + r.stderr
        task = copy_task(d, "lrx")
        deadline = time.time() + 60
        log = ""
        while time.time() < deadline and "is missing" not in log:
            log = d.cli("task", "show", task["id"]).stdout
            time.sleep(1)
        assert "reading backup" in log and "is missing" in log, log
    finally:
        for c in chunks:
            os.rename(os.path.join(hidden, os.path.basename(c)), c)
    d.cli("vm", "stop", "lrx")
    d.cli("vm", "delete", "lrx")
    deadline = time.time() + 5  # the deletion wakes the copy's watcher, which stops the export
    while export_pids(d) and time.time() < deadline:
        time.sleep(0.2)
    assert export_pids(d) == []


def add_drill(d, *extra):
    out = d.cli("backup", "drill", "add", "lr", "--repo", "lr", "--weekly", "sun", "03:00", *extra).stdout
    assert "next run" in out, out
    return out.split()[1].rstrip(":")


def drill(d, drill_id):
    return [x for x in d.cli_json("backup", "drill", "list") if x["id"] == drill_id][0]


def drill_check(d):
    r = d.cli("host", "check", "--json", check=False)
    return {c["name"]: c for c in json.loads(r.stdout)["checks"]}["restore-drills"]


def test_a_drill_that_passes_records_its_recovery_time(lr):
    d = lr
    bad = d.cli("backup", "drill", "add", "lr", "--repo", "lr", "--weekly", "someday", "03:00", check=False)
    assert bad.returncode != 0 and "must be a weekday" in bad.stderr
    bad = d.cli("backup", "drill", "add", "lr", "--repo", "lr", "--weekly", "sun", "03:00", "--timeout", "10",
                check=False)
    assert bad.returncode != 0 and "needs a unit" in bad.stderr
    drill_id = add_drill(d, "--check", f"test \"$(md5sum /mnt/data/a | cut -d' ' -f1)\" = {d.lr_files}",
                         "--timeout", "5m")
    out = d.cli("backup", "drill", "run", drill_id).stdout
    assert "was healthy" in out and d.lr_backup in out, out
    got = drill(d, drill_id)
    assert got["last_result"] == "ok" and got["last_backup"] == d.lr_backup
    assert 0 < got["last_recovery_seconds"] < 120
    assert "drill-" + drill_id not in [v["name"] for v in d.vms()]  # the scratch VM is gone, and its export
    assert export_pids(d) == []
    assert drill_check(d)["status"] == "ok"
    d.cli("backup", "drill", "remove", drill_id)


def test_a_drill_whose_check_fails_is_a_host_check_finding(lr):
    d = lr
    drill_id = add_drill(d, "--check", "test -f /mnt/data/no-such-file", "--timeout", "30s")
    r = d.cli("backup", "drill", "run", drill_id, check=False)
    assert r.returncode != 0 and "did not succeed within 30 s" in r.stderr, r.stderr
    assert drill(d, drill_id)["last_result"].startswith("failed: ")
    finding = drill_check(d)
    assert finding["status"] == "fail" and drill_id in finding["detail"]
    assert "drill-" + drill_id not in [v["name"] for v in d.vms()]
    assert export_pids(d) == []
    d.cli("backup", "drill", "remove", drill_id)
    assert drill_check(d)["status"] == "ok"


def test_a_drill_of_a_backup_with_a_damaged_chunk_fails_naming_it(lr):
    d = lr
    chunks = sorted(os.path.join(root, f) for root, _, files in os.walk(os.path.join(d.lr_repo, "chunks"))
                    for f in files)
    victim = chunks[len(chunks) // 2]
    with open(victim, "r+b") as f:
        f.seek(40)
        byte = f.read(1)
        f.seek(40)
        f.write(bytes([byte[0] ^ 0xFF]))
    try:
        drill_id = add_drill(d)
        r = d.cli("backup", "drill", "run", drill_id, check=False)
        assert r.returncode != 0 and os.path.basename(victim) in r.stderr, r.stderr
        assert drill(d, drill_id)["last_result"].startswith("failed: ")
    finally:
        with open(victim, "r+b") as f:
            f.seek(40)
            f.write(byte)
    d.cli("backup", "drill", "remove", drill_id)


def test_a_drill_is_skipped_when_the_host_lacks_the_memory_for_it(lr):
    d = lr
    # A VM whose memory no host here has: defined and backed up (stopped), never started.
    d.cli("vm", "create", "lrbig", "--cpus", "1", "--memory", "1T", "--disk", "16M", "--net", "none")
    try:
        d.cli("backup", "run", "lrbig", "--repo", "lr")
        out = d.cli("backup", "drill", "add", "lrbig", "--repo", "lr", "--weekly", "mon", "04:00").stdout
        drill_id = out.split()[1].rstrip(":")
        r = d.cli("backup", "drill", "run", drill_id, check=False)
        assert r.returncode != 0 and "skipped: the scratch VM needs" in r.stderr, r.stderr
        assert "drill-" + drill_id not in [v["name"] for v in d.vms()]
        finding = drill_check(d)
        assert finding["status"] == "warn" and drill_id in finding["detail"]
        d.cli("backup", "drill", "remove", drill_id)
    finally:
        d.cli("vm", "delete", "lrbig", check=False)


def test_live_restore_from_an_sftp_repository(lr):
    from pampa_harness import Sshd
    d = lr
    sshd = Sshd(d.root)
    try:
        url = f"sftp://root@127.0.0.1:{sshd.port}{d.root}/sftp-lr"
        d.cli("repo", "add", "lrsftp", "--url", url, "--passphrase-file", os.path.join(d.root, "lr-passphrase"),
              "--ssh-key", sshd.key, "--known-hosts", sshd.known_hosts)
        d.cli("vm", "start", "lr")
        d.wait_console("lr", "pampa-guest: ready")
        backup = json.loads(d.cli("backup", "run", "lr", "--repo", "lrsftp", "--json").stdout)["id"]
        d.cli("vm", "stop", "lr")
        d.cli("backup", "restore", backup, "--repo", "lrsftp", "--as", "lrs", "--live")
        d.wait_console("lrs", "pampa-guest: ready")
        assert guest_md5(d, "lrs", "/mnt/data/a") == d.lr_files
        done = d.wait_task(copy_task(d, "lrs")["id"], timeout=240)
        assert done["state"] == "succeeded", done
        assert guest_md5(d, "lrs", "/dev/vdb") == d.lr_vdb
        d.cli("vm", "stop", "lrs")
        d.cli("vm", "delete", "lrs")
        assert export_pids(d) == []
    finally:
        sshd.stop()


def test_a_name_live_restored_again_right_after_its_delete_gets_its_own_copy(lr):
    d = lr
    d.cli("backup", "restore", d.lr_backup, "--repo", "lr", "--as", "lrr", "--live", "--bwlimit", "2M")
    first = copy_task(d, "lrr")
    d.cli("vm", "stop", "lrr")
    d.cli("vm", "delete", "lrr")
    out = d.cli("backup", "restore", d.lr_backup, "--repo", "lr", "--as", "lrr", "--live").stdout
    second = copy_task(d, "lrr")
    assert second["id"] != first["id"] and second["id"] in out, out
    assert len(export_pids(d)) == 1
    d.wait_console("lrr", "pampa-guest: ready")
    assert d.wait_task(second["id"], timeout=240)["state"] == "succeeded"
    assert guest_md5(d, "lrr", "/dev/vdb") == d.lr_vdb
    assert export_pids(d) == []
    d.cli("vm", "stop", "lrr")
    d.cli("vm", "delete", "lrr")
