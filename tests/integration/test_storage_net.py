"""Pools, volumes, image import as a task with progress, and networks."""
import json
import os
import subprocess
import time

from pampa_harness import GUEST, Pampad


def test_pool_and_volume_lifecycle(pampad):
    path = os.path.join(pampad.root, "pool2")
    pampad.cli("pool", "create", "fast", "--path", path)
    assert os.path.isdir(path)
    pools = {p["name"]: p for p in pampad.cli_json("pool", "list")}
    assert pools["fast"]["path"] == path and pools["fast"]["capacity"] > 0
    pampad.cli("volume", "create", "fast", "data1", "--size", "64M")
    pampad.cli("volume", "create", "fast", "raw1", "--size", "1M", "--format", "raw")
    vols = {v["name"]: v for v in pampad.cli_json("volume", "list", "fast")}
    assert vols["data1"]["size"] == 64 << 20 and vols["data1"]["format"] == "qcow2"
    assert vols["raw1"]["format"] == "raw"
    r = pampad.cli("volume", "create", "fast", "data1", "--size", "1M", check=False)
    assert "already exists" in r.stderr
    pampad.cli("volume", "resize", "fast", "data1", "--size", "128M")
    assert pampad.cli_json("volume", "list", "fast")[0]["size"] == 128 << 20
    r = pampad.cli("volume", "resize", "fast", "data1", "--size", "32M", check=False)
    assert r.returncode != 0 and "only growing is allowed" in r.stderr
    r = pampad.cli("pool", "delete", "fast", check=False)
    assert r.returncode != 0 and "still holds 2 volume(s)" in r.stderr
    pampad.cli("volume", "delete", "fast", "data1")
    pampad.cli("volume", "delete", "fast", "raw1")
    pampad.cli("pool", "delete", "fast")
    assert "fast" not in [p["name"] for p in pampad.cli_json("pool", "list")]


def test_import_runs_as_a_task_with_progress_and_converts_formats(pampad):
    vmdk = os.path.join(pampad.root, "guest.vmdk")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", GUEST + "/disk.qcow2", vmdk], check=True)
    task = pampad.cli("volume", "import", "default", "fromvmdk", vmdk, "--async").stdout.strip()
    deadline = time.time() + 120
    while time.time() < deadline:
        t = pampad.cli_json("task", "show", task)
        if t["state"] != "running":
            break
        time.sleep(0.2)
    assert t["state"] == "succeeded", t
    assert t["type"] == "import" and t["progress"] == 1.0
    assert task in [x["id"] for x in pampad.cli_json("task", "list")]
    vol = [v for v in pampad.cli_json("volume", "list", "default") if v["name"] == "fromvmdk"][0]
    assert vol["format"] == "qcow2" and vol["size"] == 1 << 30
    # Same bytes as the source.
    r = subprocess.run(["qemu-img", "compare", "-q", GUEST + "/disk.qcow2", vol["path"]])
    assert r.returncode == 0
    # Synchronous import prints the result; a taken name is refused before a task starts.
    assert pampad.cli("volume", "import", "default", "fromvmdk", vmdk, check=False).returncode != 0
    pampad.cli("volume", "delete", "default", "fromvmdk")


def test_vm_with_blank_disks_and_uefi(pampad):
    pampad.cli("vm", "create", "efi", "--cpus", "2", "--memory", "512M", "--disk", "1G", "--disk", "2G",
               "--firmware", "uefi", "--net", "none")
    vm = pampad.vm("efi")
    assert [d["volume"] for d in vm["disks"]] == ["efi-disk0", "efi-disk1"]
    assert vm["firmware"] == "uefi" and vm["nics"] == []
    pampad.cli("vm", "start", "efi")
    assert pampad.vm("efi")["state"] == "running"
    pampad.cli("vm", "stop", "efi")
    pampad.cli("vm", "delete", "efi")
    assert not [v for v in pampad.cli_json("volume", "list", "default") if v["name"].startswith("efi-")]


def test_disks_and_nics_are_added_and_removed(pampad):
    pampad.create_guest("dev")
    pampad.cli("volume", "create", "default", "spare", "--size", "32M")
    r = pampad.cli("vm", "edit", "dev", "--add-disk", "100", check=False)
    assert r.returncode != 0 and "has no unit" in r.stderr
    pampad.cli("vm", "edit", "dev", "--add-disk", "64M", "--add-disk", "default/spare",
               "--add-nic", "default", "--mac", "52:54:00:aa:bb:cc")
    vm = pampad.vm("dev")
    assert [d["volume"] for d in vm["disks"]] == ["dev-disk0", "spare", "dev-disk1"]
    assert [n["mac"] for n in vm["nics"]][1] == "52:54:00:aa:bb:cc"
    r = pampad.cli("vm", "edit", "dev", "--add-disk", "default/spare", check=False)
    assert r.returncode != 0 and "already a disk of vm 'dev'" in r.stderr
    r = pampad.cli("vm", "edit", "dev", "--remove-nic", "5", check=False)
    assert r.returncode != 0 and "has no NIC 5" in r.stderr
    # The guest sees the new disks and NIC.
    pampad.cli("vm", "start", "dev")
    try:
        pampad.wait_console("dev", "pampa-guest: ready")
        blocks = pampad.exec("dev", "ls", "/sys/block").stdout.split()
        assert {"vda", "vdb", "vdc"} <= set(blocks), blocks
        assert int(pampad.exec("dev", "cat", "/sys/block/vdc/size").stdout) == 64 * 2048
        mac = pampad.exec("dev", "cat", "/sys/class/net/eth1/address").stdout.strip()
        assert mac == "52:54:00:aa:bb:cc"
    finally:
        pampad.cli("vm", "stop", "dev")
    # Removed: the NIC, a disk whose volume stays, a disk whose volume goes.
    pampad.cli("vm", "edit", "dev", "--remove-nic", "1", "--remove-disk", "1", "--keep-volume")
    pampad.cli("vm", "edit", "dev", "--remove-disk", "1")
    vm = pampad.vm("dev")
    assert [d["volume"] for d in vm["disks"]] == ["dev-disk0"] and len(vm["nics"]) == 1
    volumes = [v["name"] for v in pampad.cli_json("volume", "list", "default")]
    assert "spare" in volumes and "dev-disk1" not in volumes
    # Snapshots cover the disks as they are: adding one is refused while they exist.
    pampad.cli("snapshot", "create", "dev", "s1")
    r = pampad.cli("vm", "edit", "dev", "--add-disk", "8M", check=False)
    assert r.returncode != 0 and "snapshot(s)" in r.stderr
    pampad.cli("vm", "delete", "dev")
    pampad.cli("volume", "delete", "default", "spare")


def wait_guest(pampad, name, *argv, until, timeout=30):
    """Runs argv in the guest until until(stdout) holds; returns that stdout."""
    deadline = time.time() + timeout
    while True:
        out = pampad.exec(name, *argv, check=False).stdout
        if until(out):
            return out
        assert time.time() < deadline, f"{argv} never matched; last: {out!r}"
        time.sleep(0.5)


def test_devices_change_while_the_guest_runs(pampad, tmp_path):
    pampad.create_guest("hot")
    pampad.cli("vm", "start", "hot")
    pampad.wait_console("hot", "pampa-guest: ready")
    blocks = lambda: pampad.exec("hot", "ls", "/sys/block").stdout.split()
    # Its machine has a hot-plug port for each slot in use and a few spare (fewer ports, a shorter
    # migration switch-over); more than that waits for a stop, and nothing is made meanwhile.
    assert pampad.vm("hot")["hotplug_ports"]["disks"] == 4
    volumes = sorted(v["name"] for v in pampad.cli_json("volume", "list", "default"))
    r = pampad.cli("vm", "edit", "hot", *["--add-disk", "8M"] * 4, check=False)
    assert r.returncode != 0 and "4 hot-plug port(s) for disks, all taken, and it runs" in r.stderr, r.stderr
    assert len(pampad.vm("hot")["disks"]) == 1
    assert sorted(v["name"] for v in pampad.cli_json("volume", "list", "default")) == volumes
    # A virtio disk and a SCSI disk join the running guest.
    pampad.cli("vm", "edit", "hot", "--add-disk", "32M")
    wait_guest(pampad, "hot", "cat", "/sys/block/vdb/size", until=lambda o: o.strip() == str(32 * 2048))
    pampad.cli("vm", "edit", "hot", "--add-disk", "16M", "--bus", "scsi")
    wait_guest(pampad, "hot", "cat", "/sys/block/sda/size", until=lambda o: o.strip() == str(16 * 2048))
    assert [d.get("bus", "virtio") for d in pampad.vm("hot")["disks"]] == ["virtio", "virtio", "scsi"]
    # A NIC joins with the MAC asked for.
    pampad.cli("vm", "edit", "hot", "--add-nic", "default", "--mac", "52:54:00:12:34:99")
    wait_guest(pampad, "hot", "cat", "/sys/class/net/eth1/address", until=lambda o: "52:54:00:12:34:99" in o)
    # A disc goes into the CD drive, which the guest reads, and comes out again.
    (tmp_path / "cd").mkdir()
    (tmp_path / "cd" / "hello.txt").write_text("from the disc\n")
    iso = os.path.join(pampad.root, "disc.iso")  # where pampad may read from
    subprocess.run(["genisoimage", "-quiet", "-V", "DISC", "-o", iso, str(tmp_path / "cd")], check=True)
    pampad.cli("vm", "edit", "hot", "--cdrom", iso)
    assert pampad.vm("hot")["cdrom"] == iso
    # (The guest's first read after a change meets the drive's "medium changed".)
    wait_guest(pampad, "hot", "sh", "-c", "mount -t iso9660 -o ro /dev/sr0 /mnt && cat /mnt/hello.txt",
               until=lambda o: o == "from the disc\n")
    pampad.exec("hot", "umount", "/mnt")
    pampad.cli("vm", "edit", "hot", "--cdrom", "none")
    assert pampad.vm("hot")["cdrom"] == ""
    wait_guest(pampad, "hot", "sh", "-c", "dd if=/dev/sr0 of=/dev/null bs=2048 count=1 2>/dev/null || echo empty",
               until=lambda o: o.strip() == "empty")
    # Any disk or NIC leaves a running guest, and nothing else moves under it.
    r = pampad.cli("vm", "edit", "hot", "--add-disk", "8M", "--bus", "sata", check=False)
    assert r.returncode != 0 and "sata disks cannot be added or removed while it runs" in r.stderr
    r = pampad.cli("vm", "edit", "hot", "--cpus", "2", check=False)
    assert r.returncode != 0 and "stop it before editing" in r.stderr
    pampad.exec("hot", "sh", "-c", "echo kept > /dev/sda && sync")  # the SCSI disk, after the one that leaves
    pampad.cli("vm", "edit", "hot", "--remove-disk", "1")  # vdb, in the middle
    wait_guest(pampad, "hot", "ls", "/sys/block", until=lambda o: "vdb" not in o.split())
    assert {"vda", "sda"} <= set(blocks())
    assert pampad.exec("hot", "head", "-c", "4", "/dev/sda").stdout == "kept"
    vm = pampad.vm("hot")
    assert [d.get("bus", "virtio") for d in vm["disks"]] == ["virtio", "scsi"]
    # The SCSI disk, now disk 1, grows online under its own node.
    pampad.cli("vm", "disk", "resize", "hot", "1", "+8M")
    wait_guest(pampad, "hot", "cat", "/sys/block/sda/size", until=lambda o: o.strip() == str(24 * 2048))
    # Snapshots and hot backups find the disks by their slots, gap and all.
    pampad.cli("snapshot", "create", "hot", "gap")
    pampad.cli("snapshot", "delete", "hot", "gap")
    pampad.add_passphrase_repo("gaps", "slots stay put")
    runs = [json.loads(pampad.cli("backup", "run", "hot", "--repo", "gaps", "--json").stdout) for _ in range(2)]
    assert runs[0]["incremental"] is False and runs[1]["incremental"] is True, runs
    # A disk that joins takes the free slot: the guest sees a vdb again.
    pampad.cli("vm", "edit", "hot", "--add-disk", "40M")
    wait_guest(pampad, "hot", "cat", "/sys/block/vdb/size", until=lambda o: o.strip() == str(40 * 2048))
    # The first NIC leaves; the second keeps its MAC.
    pampad.cli("vm", "edit", "hot", "--remove-nic", "0")
    wait_guest(pampad, "hot", "sh", "-c", "cat /sys/class/net/eth*/address",
               until=lambda o: o.split() == ["52:54:00:12:34:99"])
    assert [n["mac"] for n in pampad.vm("hot")["nics"]] == ["52:54:00:12:34:99"]
    pampad.cli("vm", "edit", "hot", "--remove-disk", "1")
    wait_guest(pampad, "hot", "ls", "/sys/block", until=lambda o: "sda" not in o.split())
    pampad.cli("vm", "edit", "hot", "--remove-disk", "1")
    wait_guest(pampad, "hot", "ls", "/sys/block", until=lambda o: "vdb" not in o.split())
    vm = pampad.vm("hot")
    assert len(vm["disks"]) == 1 and len(vm["nics"]) == 1 and vm["state"] == "running"
    assert [v["name"] for v in pampad.cli_json("volume", "list", "default") if v["name"].startswith("hot-")] == [
        "hot-disk0"]  # the removed disks' volumes went with them
    assert "vda" in blocks()
    # A sata disk, added while stopped, is there at the next start.
    pampad.cli("vm", "stop", "hot")
    pampad.cli("vm", "edit", "hot", "--add-disk", "8M", "--bus", "sata")
    pampad.cli("vm", "start", "hot")
    pampad.wait_console("hot", "pampa-guest: ready")
    wait_guest(pampad, "hot", "cat", "/sys/block/sda/size", until=lambda o: o.strip() == str(8 * 2048))
    pampad.cli("vm", "stop", "hot")
    pampad.cli("vm", "delete", "hot")


def read(path):
    with open(path) as f:
        return f.read().strip()


def test_nat_network_create_and_delete(pampad):
    pampad.cli("net", "create", "lab", "--subnet", "10.214.5.0/24")
    nets = {n["name"]: n for n in pampad.cli_json("net", "list")}
    lab = nets["lab"]
    assert lab["mode"] == "nat" and lab["active"] and lab["gateway"] == "10.214.5.1"
    assert os.path.exists(f"/sys/class/net/{lab['bridge']}")
    # The gateway's MAC is the bridge's own: a port with a lower MAC (a VM's tap) does not move it.
    mac = read(f"/sys/class/net/{lab['bridge']}/address")
    assert mac.startswith("02:") and read(f"/sys/class/net/{lab['bridge']}/addr_assign_type") == "3"
    subprocess.run(["ip", "link", "add", "pitlow", "address", "00:00:00:00:00:01", "type", "veth", "peer", "name",
                    "pitlowp"], check=True)
    try:
        subprocess.run(["ip", "link", "set", "pitlow", "master", lab["bridge"], "up"], check=True)
        assert read(f"/sys/class/net/{lab['bridge']}/address") == mac
    finally:
        subprocess.run(["ip", "link", "del", "pitlow"], check=False)
    r = pampad.cli("net", "create", "lab2", "--subnet", "10.214.5.128/25", check=False)
    assert "overlaps network 'lab'" in r.stderr
    pampad.cli("net", "delete", "lab")
    assert not os.path.exists(f"/sys/class/net/{lab['bridge']}")


def test_bridged_network_uses_an_existing_bridge(pampad):
    subprocess.run(["ip", "link", "add", "pitbr0", "type", "bridge"], check=True)
    try:
        pampad.cli("net", "create", "lan", "--bridge", "pitbr0")
        lan = [n for n in pampad.cli_json("net", "list") if n["name"] == "lan"][0]
        assert lan["mode"] == "bridge" and lan["bridge"] == "pitbr0"
        pampad.cli("net", "delete", "lan")
        assert os.path.exists("/sys/class/net/pitbr0")  # not ours to delete
    finally:
        subprocess.run(["ip", "link", "del", "pitbr0"])


def test_host_check_reports_each_part(pampad):
    r = pampad.cli("host", "check", check=False)
    checks = {c["name"]: c for c in pampad.cli_json("host", "check")["checks"]}
    for name in ("qemu", "qemu-img", "accelerator", "bridge", "dnsmasq", "cgroups", "kvm-device"):
        assert name in checks, name
    assert checks["qemu"]["status"] == "ok" and "QEMU emulator version" in checks["qemu"]["detail"]
    assert "tcg" in checks["accelerator"]["detail"]  # forced by PAMPA_ACCEL=tcg in tests
    assert "[" in r.stdout and "accelerator" in r.stdout


def test_autostart_vms_start_after_a_host_reboot():
    d = Pampad(subnet="10.215.0.0/24").start()
    try:
        common = ["--cpus", "1", "--memory", "128M", "--net", "none", "--kernel", GUEST + "/vmlinuz",
                  "--initrd", GUEST + "/initrd.img", "--append", "console=ttyS0 quiet"]
        d.cli("vm", "create", "auto", "--autostart", *common)
        d.cli("vm", "create", "manual", *common)
        d.stop()
        # A host reboot: no QEMU survives and the kernel's boot id changes.
        subprocess.run(["sqlite3", os.path.join(d.data, "state.db"),
                        "UPDATE kv SET value='an-earlier-boot' WHERE key LIKE 'hosts/%/boot_id'"], check=True)
        d.start()
        d.wait_state("auto", "running", timeout=30)
        assert d.vm("manual")["state"] == "stopped"
        # A plain pampad restart (same boot) starts nothing.
        d.cli("vm", "stop", "auto")
        d.stop()
        d.start()
        time.sleep(1)
        assert d.vm("auto")["state"] == "stopped"
    finally:
        d.teardown()
