"""File-level restore from a real backup of a real guest: files with known checksums come out of ext4 (on the
whole disk), of ext4, xfs on LVM, vfat and NTFS on a GPT disk, through pampad's restore appliance, with modes and
times, as a directory or a tar; a path that does not exist, a '..' and a disk the backup lacks are refused
clearly; nothing of the guest's file systems is ever mounted on the host."""
import io
import json
import os
import subprocess
import tarfile
import time

import pytest

from pampa_harness import APPEND, GUEST, PAMPA, processes

# Built inside the guest (the appliance image booted as a plain guest has sfdisk, lvm and the mkfs tools):
# a GPT disk with ext4, an LVM volume group holding an xfs volume, vfat and NTFS.
MAKE_DISK = r'''
set -e
printf 'label: gpt\n,64M,L\n,400M,E6D6D379-F507-44C2-A23C-238F2A3DF928\n,64M,L\n,,EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n' \
  | sfdisk -q /dev/vdb
mkfs.ext4 -q /dev/vdb1
pvcreate -q /dev/vdb2 && vgcreate -q vg0 /dev/vdb2 && lvcreate -q -L 320M -n data vg0 && vgmknodes
mkfs.xfs -q /dev/mapper/vg0-data
mkfs.vfat /dev/vdb3 >/dev/null 2>&1
mkntfs -Q -q /dev/vdb4
mkdir -p /t/part1 /t/lv /t/part3 /t/part4
mount /dev/vdb1 /t/part1; mount /dev/mapper/vg0-data /t/lv; mount -t vfat -o utf8 /dev/vdb3 /t/part3
ntfs-3g /dev/vdb4 /t/part4
for t in /t/part1 /t/lv /t/part3 /t/part4; do
  mkdir -p $t/docs/deep
  dd if=/dev/urandom of=$t/docs/deep/blob bs=1k count=3000 2>/dev/null
  echo "hello from $t" > $t/docs/hello.txt
done
chmod 640 /t/lv/docs/hello.txt
touch -d '2021-06-01 12:00:00' /t/lv/docs/hello.txt
ln -s deep/blob /t/lv/docs/link
sha256sum /t/part1/docs/deep/blob /t/lv/docs/deep/blob /t/part3/docs/deep/blob /t/part4/docs/deep/blob
umount /t/part1 /t/lv /t/part3 /t/part4; vgchange -an vg0 >/dev/null; sync
'''


def sha256(path):
    return subprocess.run(["sha256sum", path], capture_output=True, text=True, check=True).stdout.split()[0]


@pytest.fixture(scope="module")
def fr(pampad):
    d = pampad
    d.cli("vm", "create", "fr", "--cpus", "1", "--memory", "256M", "--net", "none",
          "--disk-image", os.path.join(GUEST, "disk.qcow2"), "--disk", "640M",
          "--kernel", os.path.join(GUEST, "vmlinuz"), "--initrd", os.path.join(GUEST, "appliance.img"),
          "--append", APPEND)
    d.cli("vm", "start", "fr")
    d.wait_console("fr", "pampa-guest: ready")
    out = d.exec("fr", "sh", "-c", MAKE_DISK).stdout
    sums = {line.split()[1]: line.split()[0] for line in out.splitlines() if len(line.split()) == 2}
    d.fr_sums = {"part1": sums["/t/part1/docs/deep/blob"], "vg0/data": sums["/t/lv/docs/deep/blob"],
                 "part3": sums["/t/part3/docs/deep/blob"], "part4": sums["/t/part4/docs/deep/blob"]}
    d.exec("fr", "sh", "-c", "echo root-disk-file > /mnt/rootfile && sync")
    d.fr_repo = d.add_passphrase_repo("fr", "file restore passphrase")
    # A hot backup: the guest keeps running, as it would in production.
    d.fr_backup = json.loads(d.cli("backup", "run", "fr", "--repo", "fr", "--json").stdout)["id"]
    yield d
    d.cli("vm", "stop", "fr", check=False)
    d.cli("vm", "delete", "fr", check=False)


def files(d, *args, disk=1):
    return json.loads(d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", str(disk), *args,
                            "--json").stdout)


def test_a_backup_disk_lists_its_volumes_and_directories(fr):
    d = fr
    t0 = time.time()
    top = files(d)
    first = time.time() - t0
    vols = {e["name"]: e for e in top["entries"]}
    assert set(vols) == {"part1", "part3", "part4", "vg0/data"}, top
    assert vols["part1"]["fs"] == "ext4" and vols["vg0/data"]["fs"] == "xfs" and vols["part3"]["fs"] == "vfat"
    assert vols["part4"]["fs"] == "ntfs"
    assert all(v["state"] == "mounted" for v in vols.values()), vols
    docs = {e["name"]: e for e in files(d, "/vg0/data/docs")["entries"]}
    assert docs["deep"]["type"] == "dir"
    assert docs["hello.txt"]["type"] == "file" and docs["hello.txt"]["mode"] == "640"
    assert docs["hello.txt"]["size"] == len("hello from /t/lv\n")
    assert docs["hello.txt"]["mtime"] == int(time.mktime(time.strptime("2021-06-01 12:00:00", "%Y-%m-%d %H:%M:%S")))
    assert docs["link"]["type"] == "symlink" and docs["link"]["target"] == "deep/blob"
    # The appliance stays up: the next look answers at once.
    t1 = time.time()
    blob = files(d, "/part3/docs/deep/blob")["entries"]
    assert [e["name"] for e in blob] == ["blob"] and blob[0]["size"] == 3000 * 1024
    assert time.time() - t1 < first, "a second listing should not boot the appliance again"
    # The text listing, as a user reads it.
    text = d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", "1", "/part1/docs").stdout
    assert "hello.txt" in text and "deep/" in text, text
    r = d.cli("host", "check", "--json", check=False)
    check = {c["name"]: c for c in json.loads(r.stdout)["checks"]}["file-restore"]
    assert check["status"] == "ok" and "1 running" in check["detail"], check
    # The first disk: ext4 on the whole disk.
    root = files(d, "/disk", disk=0)["entries"]
    assert "rootfile" in [e["name"] for e in root]


def test_files_come_out_with_their_checksums_modes_and_times(fr, tmp_path):
    d = fr
    for vol, want in d.fr_sums.items():
        dest = tmp_path / vol.replace("/", "_")
        dest.mkdir()
        out = d.cli("backup", "extract", d.fr_backup, "--repo", "fr", "--disk", "1", f"/{vol}/docs",
                    "--to", str(dest)).stdout
        assert "extracted 1 path" in out, out
        assert sha256(str(dest / "docs" / "deep" / "blob")) == want, vol
        assert (dest / "docs" / "hello.txt").read_text() == f"hello from /t/{vol.split('/')[0].replace('vg0', 'lv')}\n"
    hello = tmp_path / "vg0_data" / "docs" / "hello.txt"
    assert oct(os.stat(hello).st_mode & 0o777) == "0o640"
    assert int(os.stat(hello).st_mtime) == int(time.mktime(time.strptime("2021-06-01 12:00:00", "%Y-%m-%d %H:%M:%S")))
    assert os.readlink(tmp_path / "vg0_data" / "docs" / "link") == "deep/blob"
    # Several paths at once, as a tar on stdout.
    raw = subprocess.run([PAMPA, "--url", f"http://127.0.0.1:{d.port}", "--token", d.token, "backup",
                          "extract", d.fr_backup, "--repo", "fr", "--disk", "1", "/part1/docs/hello.txt",
                          "/part3/docs/deep", "--tar", "-"], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = sorted(m.name for m in tar.getmembers())
        assert names == ["./deep", "./deep/blob", "./hello.txt"], names
        assert tar.extractfile("./hello.txt").read() == b"hello from /t/part1\n"


def test_bad_paths_and_disks_are_refused_clearly(fr, tmp_path):
    d = fr
    r = d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", "1", "/part1/nope", check=False)
    assert r.returncode != 0 and "no such file or directory" in r.stderr and "/part1/nope" in r.stderr, r.stderr
    r = d.cli("backup", "extract", d.fr_backup, "--repo", "fr", "--disk", "1", "/part1/docs/nope", "--to",
              str(tmp_path), check=False)
    assert r.returncode != 0 and "/part1/docs/nope" in r.stderr, r.stderr
    assert os.listdir(tmp_path) == []
    r = d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", "1", "/part9", check=False)
    assert r.returncode != 0 and "no volume 'part9'" in r.stderr and "vg0/data (xfs)" in r.stderr, r.stderr
    r = d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", "1", "/part1/../..", check=False)
    assert r.returncode != 0 and "'..'" in r.stderr, r.stderr
    r = d.cli("backup", "files", d.fr_backup, "--repo", "fr", "--disk", "7", check=False)
    assert r.returncode != 0 and "has 2 disk(s)" in r.stderr, r.stderr
    r = d.cli("backup", "extract", d.fr_backup, "--repo", "fr", "/disk/rootfile", check=False)
    assert r.returncode != 0 and "--to DIR or --tar" in r.stderr, r.stderr
    existing = tmp_path / "exists.tar"
    existing.write_text("keep me")
    r = d.cli("backup", "extract", d.fr_backup, "--repo", "fr", "/disk/rootfile", "--tar", str(existing), check=False)
    assert r.returncode != 0 and "give a new file name" in r.stderr and existing.read_text() == "keep me"


def appliances(d):
    return [pid for pid, cmd in processes() if "pampa-file-restore" in cmd and any(d.root in c for c in cmd)]


def test_the_host_never_mounts_guest_file_systems_and_a_killed_pampad_leaves_no_appliance(fr):
    d = fr
    with open("/proc/self/mounts") as f:
        mounts = f.read()
    assert "vg0" not in mounts and "/run/vols" not in mounts
    assert appliances(d), "an appliance should be running after the listings"
    # A pampad killed with -9 cannot stop its appliances (their export was in it): the next start does.
    d.kill9()
    assert appliances(d)
    d.start()
    for _ in range(100):
        if not appliances(d):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the restarted pampad left the old restore appliance running")
    # And browsing works again, from a new appliance.
    assert "part1" in [e["name"] for e in files(d)["entries"]]
