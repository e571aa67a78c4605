"""Hot, incremental, encrypted backups of a real guest to a local repository:
consistency while the guest writes, restore and boot, incremental reads, bitmaps
across stop/start, in-place restore, verify finding damage, kill -9 mid-backup."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

MiB = 1 << 20


def backup(d, vm="bk", repo="main"):
    return json.loads(d.cli("backup", "run", vm, "--repo", repo, "--json").stdout)


def md5s(d, vm, pattern="/mnt/data/*"):
    out = d.exec(vm, "sh", "-c", f"md5sum {pattern}").stdout
    return dict(reversed(line.split()) for line in out.strip().splitlines())


@pytest.fixture(scope="module")
def bk(pampad):
    pampad.create_guest("bk", "--net", "none")
    pampad.cli("vm", "start", "bk")
    pampad.wait_console("bk", "pampa-guest: ready")
    pampad.repo_dir = pampad.add_passphrase_repo("main", "correct horse battery staple")
    yield pampad
    for vm in ("bk", "bkr"):
        pampad.cli("vm", "stop", vm, check=False)
        pampad.cli("vm", "delete", vm, check=False)


def test_backup_of_a_writing_guest_restores_to_a_clean_bootable_copy(bk):
    d = bk
    d.exec("bk", "sh", "-c", "mkdir -p /mnt/data && for i in 1 2 3 4 5 6; do "
           "dd if=/dev/urandom of=/mnt/data/f$i bs=256k count=4 2>/dev/null; done; sync")
    before = md5s(d, "bk")
    # The guest keeps writing while the backup runs.
    d.exec("bk", "sh", "-c", "(while true; do dd if=/dev/urandom of=/mnt/busy bs=64k count=8 2>/dev/null; "
           "done) >/dev/null 2>&1 &")
    r = backup(d)
    d.exec("bk", "killall", "sh", check=False)
    for key in ("id", "vm", "bytes_read", "bytes_uploaded", "seconds", "incremental"):
        assert key in r
    assert r["incremental"] is False
    assert r["consistency"].startswith("application-consistent")
    # Freeze, transaction and thaw share one agent connection: the log says how long guest writes waited.
    task = [t for t in d.cli_json("task", "list") if t["type"] == "backup"][-1]
    assert re.search(r"guest writes waited \d+ ms for the thaw", d.cli("task", "show", task["id"]).stdout)
    assert r["slowest_stage"] in ("read", "compress_encrypt", "upload")
    assert d.vm("bk")["state"] == "running"

    d.cli("backup", "restore", r["id"], "--repo", "main", "--as", "bkr")
    restored = d.vm("bkr")
    assert restored["state"] == "stopped" and restored["uuid"] != d.vm("bk")["uuid"]
    # The filesystem in the restored disk is clean (host-side fsck of a raw copy).
    vol = [v for v in d.cli_json("volume", "list", "default") if v["name"] == "bkr-disk0"][0]
    raw = os.path.join(d.root, "bkr.raw")
    subprocess.run(["qemu-img", "convert", "-O", "raw", vol["path"], raw], check=True)
    fsck = subprocess.run(["e2fsck", "-fy", raw], capture_output=True, text=True)
    os.unlink(raw)
    assert fsck.returncode in (0, 1), fsck.stdout + fsck.stderr  # 1: journal replayed, nothing lost
    d.cli("vm", "start", "bkr")
    d.wait_console("bkr", "pampa-guest: ready")
    assert md5s(d, "bkr") == before
    d.cli("vm", "stop", "bkr")


def test_incremental_reads_only_changed_blocks(bk):
    d = bk
    d.exec("bk", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/inc1 bs=1M count=8 2>/dev/null; sync")
    r = backup(d)
    assert r["incremental"] is True
    # The 8 MiB plus metadata and what the writer of the previous test left: far from the 1 GiB disk.
    assert 8 * MiB <= r["bytes_read"] <= 40 * MiB, r
    assert r["bytes_uploaded"] >= 8 * MiB
    # Progress names each stage's throughput, through the task API (the CLI bar shows the same).
    task = [t for t in d.cli_json("task", "list") if t["type"] == "backup"][-1]
    assert "compress+encrypt" in task["message"] and "MiB/s" in task["message"], task
    quiet = backup(d)
    assert quiet["incremental"] is True and quiet["bytes_read"] <= 8 * MiB


def test_dirty_bitmap_survives_stop_and_start(bk):
    d = bk
    d.cli("vm", "shutdown", "bk")
    d.cli("vm", "start", "bk")
    d.wait_console("bk", "pampa-guest: ready")
    d.exec("bk", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/inc2 bs=1M count=4 2>/dev/null; sync")
    r = backup(d)
    assert r["incremental"] is True, r
    assert r["bytes_read"] <= 24 * MiB


def test_stopped_vm_backup_and_in_place_restore(bk):
    d = bk
    want = md5s(d, "bk")
    d.cli("vm", "shutdown", "bk")
    r = backup(d)
    assert r["consistency"].startswith("consistent") and r["incremental"] is True
    # A stopped VM's bitmaps rotate while its chunks are compressed; the next backup of the stopped VM is
    # incremental and reads nothing, and the image keeps this repository's bitmap and the one before it only.
    again = backup(d)
    assert again["incremental"] is True and again["bytes_read"] == 0, again
    disk = [v for v in d.cli_json("volume", "list", "default") if v["name"] == "bk-disk0"][0]["path"]
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", disk], capture_output=True, text=True,
                                     check=True).stdout)
    ours = [b["name"] for b in info["format-specific"]["data"]["bitmaps"] if b["name"].startswith("pampa-main-")]
    assert len(ours) == 2, ours
    r = again
    d.cli("vm", "start", "bk")
    d.wait_console("bk", "pampa-guest: ready")
    d.exec("bk", "sh", "-c", "rm /mnt/data/f1; echo changed > /mnt/data/f2; sync")
    r2 = d.cli("backup", "restore", r["id"], "--repo", "main", "--in-place", check=False)
    assert r2.returncode != 0 and "stop it before restoring" in r2.stderr
    d.cli("vm", "stop", "bk")
    # An in-place restore discards the VM's snapshots: refused, naming them, unless asked for.
    d.cli("snapshot", "create", "bk", "keep-me")
    r2 = d.cli("backup", "restore", r["id"], "--repo", "main", "--in-place", check=False)
    assert r2.returncode != 0 and "keep-me" in r2.stderr and "--discard-snapshots" in r2.stderr, r2.stderr
    assert [s["name"] for s in d.cli_json("snapshot", "list", "bk")["snapshots"]] == ["keep-me"]
    # A restore --as an existing VM's name says so (not that a volume exists).
    r2 = d.cli("backup", "restore", r["id"], "--repo", "main", "--as", "bk", check=False)
    assert r2.returncode != 0 and "vm 'bk' already exists" in r2.stderr, r2.stderr
    d.cli("backup", "restore", r["id"], "--repo", "main", "--in-place", "--discard-snapshots")
    assert d.cli_json("snapshot", "list", "bk")["snapshots"] == []
    d.cli("vm", "start", "bk")
    d.wait_console("bk", "pampa-guest: ready")
    assert md5s(d, "bk") == want
    # The restored image has no bitmap: the next backup reads everything, and says why.
    r3 = backup(d)
    assert r3["incremental"] is False


def test_listing_showing_and_verifying(bk):
    d = bk
    backups = d.cli_json("backup", "list", "--repo", "main", "--vm", "bk")
    assert len(backups) >= 5
    first = backups[0]["id"]
    shown = d.cli_json("backup", "show", first, "--repo", "main")
    assert shown["vm"] == "bk" and shown["disks"][0]["size"] == 1 << 30
    assert d.cli("backup", "verify", "--repo", "main").stdout.strip().endswith("ok")


def test_verify_names_a_flipped_byte(bk):
    d = bk
    chunks = []
    for root, _, files in os.walk(os.path.join(d.repo_dir, "chunks")):
        chunks += [os.path.join(root, f) for f in files]
    victim = max(chunks, key=os.path.getsize)
    with open(victim, "r+b") as f:
        f.seek(os.path.getsize(victim) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x40]))
    try:
        r = d.cli("backup", "verify", "--repo", "main", check=False)
        assert r.returncode == 1
        assert os.path.basename(victim) in r.stdout and "DAMAGED backup" in r.stdout
    finally:
        with open(victim, "r+b") as f:
            f.seek(os.path.getsize(victim) // 2)
            f.write(b)
    assert d.cli("backup", "verify", "--repo", "main").returncode == 0


def test_wrong_passphrase_and_missing_choice_are_clear(bk):
    d = bk
    wrong = os.path.join(d.root, "wrong-pass")
    with open(wrong, "w") as f:
        f.write("not the passphrase\n")
    os.chmod(wrong, 0o600)
    before = os.stat(os.path.join(d.repo_dir, "config")).st_mtime_ns
    r = d.cli("repo", "add", "again", "--url", d.repo_dir, "--passphrase-file", wrong, check=False)
    assert r.returncode != 0 and "wrong passphrase" in r.stderr
    assert os.stat(os.path.join(d.repo_dir, "config")).st_mtime_ns == before
    r = d.cli("repo", "add", "again", "--url", os.path.join(d.root, "r2"), check=False)
    assert "give one of --passphrase-file FILE" in r.stderr and "--key-file FILE" in r.stderr
    os.chmod(wrong, 0o644)
    r = d.cli("repo", "add", "again", "--url", os.path.join(d.root, "r2"), "--passphrase-file", wrong, check=False)
    assert "readable by others" in r.stderr
    r = d.cli("backup", "run", "bk", "--repo", "nope", check=False)
    assert "repository 'nope' does not exist" in r.stderr
    r = d.cli("repo", "add", "plain", "--url", os.path.join(d.root, "r3"), "--no-encryption")
    assert "NOT encrypted" in r.stderr


def test_key_file_repository_and_passphrase_change(bk):
    d = bk
    key = os.path.join(d.root, "kf.key")
    r = d.cli("repo", "add", "kf", "--url", os.path.join(d.root, "repo-kf"), "--key-file", key)
    assert "exists only in " + key in r.stderr
    assert os.stat(key).st_mode & 0o077 == 0
    listed = {x["name"]: x for x in d.cli_json("repo", "list")}
    assert listed["kf"]["key"] == "file" and listed["main"]["key"] == "passphrase"
    assert not os.path.exists(os.path.join(d.root, "repo-kf", "keys"))
    b = backup(d, repo="kf")
    assert d.cli("backup", "verify", "--repo", "kf").returncode == 0
    # Registering the same repository again needs that key file; a passphrase does not open it.
    r = d.cli("repo", "add", "kf2", "--url", os.path.join(d.root, "repo-kf"), "--passphrase-file",
              os.path.join(d.root, "main-passphrase"), check=False)
    assert r.returncode != 0 and "--key-file" in r.stderr
    assert d.cli("repo", "add", "kf2", "--url", os.path.join(d.root, "repo-kf"), "--key-file", key).returncode == 0
    assert [x["id"] for x in d.cli_json("backup", "list", "--repo", "kf2")] == [b["id"]]

    # A new passphrase for "main": the old one stops working, the backups stay.
    new = os.path.join(d.root, "passphrase-2")
    with open(new, "w") as f:
        f.write("a brand new passphrase\n")
    os.chmod(new, 0o600)
    before = [x["id"] for x in d.cli_json("backup", "list", "--repo", "main")]
    d.cli("repo", "passphrase", "main", "--new-passphrase-file", new)
    assert [x["id"] for x in d.cli_json("backup", "list", "--repo", "main")] == before
    r = d.cli("repo", "add", "old", "--url", d.repo_dir, "--passphrase-file", os.path.join(d.root, "main-passphrase"),
              check=False)
    assert r.returncode != 0 and "wrong passphrase" in r.stderr
    assert d.cli("repo", "add", "renewed", "--url", d.repo_dir, "--passphrase-file", new).returncode == 0
    r = d.cli("repo", "passphrase", "kf", "--new-passphrase-file", new, check=False)
    assert r.returncode != 0 and "key file" in r.stderr
    d.cli("repo", "passphrase", "main", "--new-passphrase-file", os.path.join(d.root, "main-passphrase"))  # as before


def chunk_size_of(url):
    with open(os.path.join(url, "config")) as f:
        return json.load(f)["chunk_size"]


def test_new_repositories_have_1mib_chunks_and_old_4mib_ones_keep_working(bk):
    d = bk
    pw = os.path.join(d.root, "main-passphrase")
    url = os.path.join(d.root, "repo-4m")
    r = d.cli("repo", "add", "odd", "--url", url, "--passphrase-file", pw, "--chunk-size", "3M", check=False)
    assert r.returncode != 0 and "power of two" in r.stderr and not os.path.exists(os.path.join(url, "config"))
    # The module's repository was made without --chunk-size: 1 MiB, the default.
    assert chunk_size_of(d.repo_dir) == 1 << 20
    assert d.cli_json("backup", "show", backup(d)["id"], "--repo", "main")["disks"][0]["chunks"] == 1024  # 1 GiB
    # A repository made with 4 MiB chunks (the default before) keeps them: added again without
    # --chunk-size it is used as it is; asking for another size is refused, not ignored.
    d.cli("repo", "add", "old", "--url", url, "--passphrase-file", pw, "--chunk-size", "4M")
    assert chunk_size_of(url) == 4 << 20
    d.cli("repo", "remove", "old", check=False)
    d.cli("repo", "add", "old", "--url", url, "--passphrase-file", pw)
    assert chunk_size_of(url) == 4 << 20
    r = d.cli("repo", "add", "old2", "--url", url, "--passphrase-file", pw, "--chunk-size", "1M", check=False)
    assert r.returncode != 0 and "4194304-byte chunks" in r.stderr
    first = backup(d, repo="old")
    assert d.cli_json("backup", "show", first["id"], "--repo", "old")["disks"][0]["chunks"] == 256
    d.exec("bk", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/small1 bs=1M count=1 2>/dev/null; sync")
    inc = backup(d, repo="old")
    assert inc["incremental"] is True and inc["bytes_read"] <= 48 * MiB, inc
    assert d.cli("backup", "verify", "--repo", "old").returncode == 0


def test_kill9_of_pampad_during_a_backup_leaves_a_usable_repository(bk):
    d = bk
    d.exec("bk", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/big bs=1M count=48 2>/dev/null; sync")
    task = d.cli("backup", "run", "bk", "--repo", "main", "--async").stdout.strip()
    time.sleep(0.3)
    d.kill9()
    d.start()
    assert d.vm("bk")["state"] == "running"
    t = d.cli_json("task", "show", task)
    assert t["state"] in ("failed", "succeeded")
    assert d.cli("backup", "verify", "--repo", "main").returncode == 0
    r = backup(d)  # cleans up whatever the interrupted backup left in QEMU
    assert r["bytes_read"] > 0 or r["incremental"]
    assert d.cli("backup", "verify", "--repo", "main").returncode == 0
    d.cli("backup", "restore", r["id"], "--repo", "main", "--as", "bkk")
    d.cli("vm", "delete", "bkk")


def test_prune_keeps_the_policy_and_frees_chunks(bk):
    d = bk
    before = d.cli_json("backup", "list", "--repo", "main", "--vm", "bk")
    assert len(before) > 2
    dry = d.cli("backup", "prune", "--repo", "main", "--keep-last", "2", "--dry-run").stdout
    assert dry.count("would remove") == len(before) - 2
    assert len(d.cli_json("backup", "list", "--repo", "main", "--vm", "bk")) == len(before)
    res = json.loads(d.cli("backup", "prune", "--repo", "main", "--keep-last", "2", "--json").stdout)
    assert res["gc"] == "done" and res["chunks_deleted"] > 0
    after = d.cli_json("backup", "list", "--repo", "main", "--vm", "bk")
    assert [b["id"] for b in after] == [b["id"] for b in before[-2:]]
    assert d.cli("backup", "verify", "--repo", "main").returncode == 0
    r = d.cli("backup", "prune", "--repo", "main", check=False)
    assert r.returncode != 0 and "at least one --keep" in r.stderr


def test_schedules_run_record_their_result_and_failures_show_in_host_check(bk):
    d = bk
    out = d.cli("backup", "schedule", "add", "bk", "--repo", "main", "--daily", "03:15", "--keep-last", "1").stdout
    sid = out.split()[1].rstrip(":")
    s = [x for x in d.cli_json("backup", "schedule", "list") if x["id"] == sid][0]
    assert s["daily"] == "03:15" and s["last_result"] == "" and s["next_run"] > time.time() * 1000
    out = d.cli("backup", "schedule", "run", sid).stdout
    s = [x for x in d.cli_json("backup", "schedule", "list") if x["id"] == sid][0]
    assert s["last_result"] == "ok" and len(s["last_backups"]) == 1
    # The run says what it backed up and what retention removed.
    assert f"backed up: {s['last_backups'][0]}" in out, out
    assert re.search(r"retention removed [1-9]\d* backup\(s\) of bk: ", out), out
    assert len(d.cli_json("backup", "list", "--repo", "main", "--vm", "bk")) == 1  # retention applied

    # A failing run (the passphrase file became world-readable) is visible until the next success.
    pass_file = os.path.join(d.root, "main-passphrase")
    os.chmod(pass_file, 0o644)
    r = d.cli("backup", "schedule", "run", sid, check=False)
    assert r.returncode != 0
    r = d.cli("host", "check", "--json", check=False)
    assert r.returncode == 1  # a failing check makes `host check` fail
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["backup-schedules"]["status"] == "fail" and sid in checks["backup-schedules"]["detail"]
    os.chmod(pass_file, 0o600)
    d.cli("backup", "schedule", "run", sid)
    checks = {c["name"]: c for c in d.cli_json("host", "check")["checks"]}
    assert checks["backup-schedules"]["status"] == "ok"
    r = d.cli("backup", "schedule", "add", "bk", "--repo", "main", "--daily", "25:00", check=False)
    assert "must be HH:MM" in r.stderr
    d.cli("backup", "schedule", "delete", sid)
    assert not d.cli_json("backup", "schedule", "list")


def test_sftp_repository_and_a_stalled_target_never_stalls_the_guest(bk):
    from pampa_harness import Sshd
    d = bk
    sshd = Sshd(d.root)
    try:
        url = f"sftp://root@127.0.0.1:{sshd.port}{d.root}/sftp-repo"
        r = d.cli("repo", "add", "remote", "--url", url, "--no-encryption", "--ssh-key", sshd.key,
                  "--known-hosts", "/dev/null", check=False)
        assert r.returncode != 0 and "not in known_hosts" in r.stderr
        d.cli("repo", "add", "remote", "--url", url, "--passphrase-file", os.path.join(d.root, "main-passphrase"),
              "--ssh-key", sshd.key, "--known-hosts", sshd.known_hosts)
        first = backup(d, repo="remote")
        assert first["incremental"] is False and first["bytes_uploaded"] > 0
        assert os.path.exists(os.path.join(d.root, "sftp-repo", "backups", first["id"]))

        # The target stops answering in the middle of a backup: the backup waits, the guest does not.
        d.exec("bk", "sh", "-c", "dd if=/dev/urandom of=/mnt/data/remote bs=1M count=24 2>/dev/null; sync")
        task = d.cli("backup", "run", "bk", "--repo", "remote", "--async").stdout.strip()
        time.sleep(0.5)
        sshd.signal_all("STOP")
        t0 = time.time()
        assert d.exec("bk", "echo", "alive").stdout == "alive\n"
        assert time.time() - t0 < 10
        assert d.vm("bk")["state"] == "running"
        sshd.signal_all("CONT")
        deadline = time.time() + 120
        while d.cli_json("task", "show", task)["state"] == "running" and time.time() < deadline:
            time.sleep(0.3)
        assert d.cli_json("task", "show", task)["state"] in ("succeeded", "failed")

        second = backup(d, repo="remote")
        assert second["incremental"] is True
        d.cli("backup", "restore", second["id"], "--repo", "remote", "--as", "fromsftp")
        assert d.cli("backup", "verify", "--repo", "remote").returncode == 0
        d.cli("vm", "delete", "fromsftp")
    finally:
        sshd.stop()


def test_an_unmounted_backup_disk_is_refused_and_nothing_is_created(bk):
    """A repository on a backup disk: unmounted (its mount point an empty directory, or gone), every
    command says so and creates nothing; `backup list` still lists the other repositories; another
    repository at the same path is not taken for it; repo remove forgets it."""
    d = bk
    pw = os.path.join(d.root, "main-passphrase")
    mnt = os.path.join(d.root, "mnt")
    r = d.cli("repo", "add", "usb", "--url", os.path.join(mnt, "usb", "pampa"), "--passphrase-file", pw, check=False)
    assert r.returncode != 0 and "is the backup disk mounted?" in r.stderr, r.stderr
    assert not os.path.exists(mnt), "repo add created the missing parents"
    os.makedirs(os.path.join(mnt, "usb"))
    url = os.path.join(mnt, "usb", "pampa")
    d.cli("repo", "add", "usb", "--url", url, "--passphrase-file", pw)
    first = backup(d, repo="usb")
    # Unmount: the mount point stays, empty.
    os.rename(os.path.join(mnt, "usb"), os.path.join(mnt, "usb.away"))
    os.makedirs(os.path.join(mnt, "usb"))
    for args in (["backup", "run", "bk", "--repo", "usb"], ["backup", "list", "--repo", "usb"],
                 ["backup", "show", first["id"], "--repo", "usb"], ["backup", "verify", "--repo", "usb"]):
        r = d.cli(*args, check=False)
        assert r.returncode != 0 and "is the backup disk mounted?" in r.stderr, (args, r.stderr)
    assert os.listdir(os.path.join(mnt, "usb")) == [], "a command created files on the unmounted mount point"
    # The other repositories are still listed; the unreachable one is named with its reason.
    r = d.cli("backup", "list")
    assert "main" in r.stdout and "usb" in r.stderr and "is the backup disk mounted?" in r.stderr, r
    assert any(b.get("unreachable") and b["repo"] == "usb" for b in d.cli_json("backup", "list"))
    # Another repository where this one was: refused, not written into.
    d.cli("repo", "add", "other", "--url", url, "--passphrase-file", pw)
    r = d.cli("backup", "run", "bk", "--repo", "usb", check=False)
    assert r.returncode != 0 and "is not 'usb'" in r.stderr, r.stderr
    assert d.cli_json("backup", "list", "--repo", "other") == []
    d.cli("repo", "remove", "other")
    shutil.rmtree(os.path.join(mnt, "usb"))
    # Mounted again: everything works as before.
    os.rename(os.path.join(mnt, "usb.away"), os.path.join(mnt, "usb"))
    assert [b["id"] for b in d.cli_json("backup", "list", "--repo", "usb")] == [first["id"]]
    # repo remove: refused while a schedule uses it, then forgets it (its data stays).
    sched = d.cli("backup", "schedule", "add", "bk", "--repo", "usb", "--daily", "03:15",
                  "--keep-last", "3").stdout.split()[1].rstrip(":")
    r = d.cli("repo", "remove", "usb", check=False)
    assert r.returncode != 0 and "schedule" in r.stderr, r.stderr
    d.cli("backup", "schedule", "delete", sched)
    d.cli("repo", "remove", "usb")
    assert "usb" not in [x["name"] for x in d.cli_json("repo", "list")]
    assert os.path.exists(os.path.join(url, "config"))
    r = d.cli("repo", "frobnicate", check=False)
    assert r.returncode != 0 and "add" in r.stderr and "remove" in r.stderr, r.stderr
