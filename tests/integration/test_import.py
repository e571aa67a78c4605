"""VMs brought in from other hypervisors' exports, on the real test guest: a XenServer XVA (written by
tests/integration/xva.py as xapi writes one, from the guest's disk) and an OVA (a qemu-img VMDK and an
OVF). Each import keeps the disk byte for byte, takes the export's hardware, and boots; a PV guest and a
damaged block are refused and leave nothing behind."""
import hashlib
import os
import shutil
import subprocess
import tarfile

from pampa_harness import APPEND, GUEST
from xva import BLOCK, write_xva


def refused(d, *args):
    r = d.cli(*args, check=False)
    assert r.returncode != 0, f"pampa {' '.join(args)} was not refused:\n{r.stdout}"
    return r.stderr


def guest_raw(d, name, marker):
    """The test guest's disk as a raw image with a file /import-marker holding `marker`."""
    raw = os.path.join(d.root, name)
    subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(GUEST, "disk.qcow2"), raw], check=True)
    src = os.path.join(d.root, name + ".marker")
    with open(src, "w") as f:
        f.write(marker + "\n")
    subprocess.run(["debugfs", "-w", "-R", f"write {src} import-marker", raw], check=True, capture_output=True)
    return raw


def same_image(raw, volume):
    r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, volume], capture_output=True, text=True)
    return r.returncode == 0


def boot_and_read_marker(d, vm):
    """The test guest's disks hold no boot loader: it boots its kernel directly, and mounts disk 0 on /mnt."""
    status, body = d.api("PATCH", f"/api/v1/vms/{vm}", {
        "kernel": os.path.join(GUEST, "vmlinuz"), "initrd": os.path.join(GUEST, "initrd.img"), "append": APPEND})
    assert status == 200, body
    d.cli("vm", "start", vm)
    d.wait_console(vm, "pampa-guest: ready", timeout=240)
    marker = d.exec(vm, "cat", "/mnt/import-marker").stdout.strip()
    d.cli("vm", "stop", vm)
    return marker


def leftovers(d, vm):
    return [v["name"] for v in d.vms() if v["name"] == vm] + [v for v in d.volume_paths() if v.startswith(vm + "-")]


def test_xva_import_keeps_the_disk_and_hardware_and_boots(pampad):
    d = pampad
    raw = guest_raw(d, "xen.raw", "from-xenserver")
    xva = os.path.join(d.root, "web.xva")
    write_xva(xva, [raw], label="web", vcpus=2, memory=320 << 20, macs=["aa:00:11:22:33:44"])
    with tarfile.open(xva) as t:
        names = t.getnames()
    assert names[0] == "ova.xml" and "Ref:10/00000000.checksum" in names
    assert f"Ref:10/{(os.path.getsize(raw) - 1) // BLOCK:08d}" in names, "the last block is always there"
    assert len(names) < 2 * os.path.getsize(raw) // BLOCK, "zero blocks are left out"

    r = d.cli("vm", "import", "xen1", "--xva", xva)
    assert "imported vm xen1" in r.stdout
    vm = d.vm("xen1")
    assert vm["cpus"] == 2 and vm["memory_mib"] == 320 and vm["firmware"] == "bios"
    assert [disk["volume"] for disk in vm["disks"]] == ["xen1-disk0"]
    assert [(n["network"], n["mac"]) for n in vm["nics"]] == [("default", "aa:00:11:22:33:44")]
    assert same_image(raw, d.volume_paths()["xen1-disk0"]), "the imported disk equals the exported one"
    task = [t for t in d.cli_json("task", "list") if t["type"] == "vm-import" and t["target"] == "xen1"][0]
    task = d.cli_json("task", "show", task["id"])
    assert task["state"] == "succeeded" and any("matched its checksum" in line for line in task["log"]), task
    assert "already exists" in refused(d, "vm", "import", "xen1", "--xva", xva)

    assert boot_and_read_marker(d, "xen1") == "from-xenserver"
    d.cli("vm", "delete", "xen1")
    # A guest without virtio drivers (Windows from XenServer) takes its disks on sata.
    d.cli("vm", "import", "xen2", "--xva", xva, "--bus", "sata")
    assert [disk.get("bus") for disk in d.vm("xen2")["disks"]] == ["sata"]
    assert "disk bus 'ide' is unknown" in refused(d, "vm", "import", "xen3", "--xva", xva, "--bus", "ide")
    d.cli("vm", "delete", "xen2")


def test_xva_pv_guests_damaged_blocks_and_bad_requests_leave_nothing(pampad):
    d = pampad
    raw = os.path.join(d.root, "small.raw")
    with open(raw, "wb") as f:
        f.write(os.urandom(3 * BLOCK + 512))
    pv = os.path.join(d.root, "pv.xva")
    write_xva(pv, [raw], label="old-pv", hvm=False)
    err = refused(d, "vm", "import", "pv1", "--xva", pv)
    assert "this is a PV guest" in err and "HVM-boot-policy=BIOS" in err, err
    assert not leftovers(d, "pv1")

    bad = os.path.join(d.root, "bad.xva")
    write_xva(bad, [raw], label="bad", corrupt_block=(0, 2))
    err = refused(d, "vm", "import", "bad1", "--xva", bad)
    assert "block Ref:10/00000002 does not match its checksum" in err, err
    assert not leftovers(d, "bad1"), "a failed import leaves no VM and no volume"

    # A file that is not an XVA, a path outside what pampad may read, malformed requests.
    assert "not a XenServer export" in refused(d, "vm", "import", "bad2", "--xva", raw)
    assert "outside the directories" in refused(d, "vm", "import", "bad2", "--xva", "/etc/hostname")
    status, body = d.api("POST", "/api/v1/vms/import", {"name": "bad2", "xva": pv, "ova": pv})
    assert status == 400 and "exactly one of 'xva'" in body["error"], body
    status, body = d.api("POST", "/api/v1/vms/import", {"name": "bad2", "xva": pv, "disk": "x"})
    assert status == 400 and "unknown field 'disk'" in body["error"], body
    status, body = d.api("POST", "/api/v1/vms/import", {"name": "Bad Name", "xva": bad})
    assert status == 400, body
    assert not leftovers(d, "bad2")


OVF = """<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References><File ovf:href="disk1.vmdk" ovf:id="file1" ovf:size="{vmdk_size}"/></References>
  <DiskSection><Info>Virtual disk information</Info>
    <Disk ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>The networks</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="appliance"><Info>A VM</Info><Name>appliance</Name>
    <VirtualHardwareSection><Info>Virtual hardware</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>288</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Address>00:50:56:01:02:03</rasd:Address><rasd:Connection>VM Network</rasd:Connection>
        <rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


def test_ova_import_converts_the_vmdk_in_place_and_boots(pampad):
    d = pampad
    raw = guest_raw(d, "vmware.raw", "from-vmware")
    vmdk = os.path.join(d.root, "disk1.vmdk")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk],
                   check=True)
    ovf = os.path.join(d.root, "appliance.ovf")
    with open(ovf, "w") as f:
        f.write(OVF.format(vmdk_size=os.path.getsize(vmdk), capacity=os.path.getsize(raw)))
    # The manifest VMware's ovftool writes beside them: each file's SHA256, checked before anything is made.
    mf = os.path.join(d.root, "appliance.mf")
    with open(mf, "w") as f:
        for name, path in (("appliance.ovf", ovf), ("disk1.vmdk", vmdk)):
            f.write(f"SHA256({name})= {hashlib.sha256(open(path, 'rb').read()).hexdigest()}\n")
    ova = os.path.join(d.root, "appliance.ova")
    with tarfile.open(ova, "w", format=tarfile.USTAR_FORMAT) as t:
        t.add(ovf, "appliance.ovf")  # the descriptor first, as the OVF standard asks
        t.add(mf, "appliance.mf")
        t.add(vmdk, "disk1.vmdk")

    d.cli("vm", "import", "ova1", "--ova", ova)
    vm = d.vm("ova1")
    assert vm["cpus"] == 2 and vm["memory_mib"] == 288
    assert [n["mac"] for n in vm["nics"]] == ["00:50:56:01:02:03"]
    assert same_image(raw, d.volume_paths()["ova1-disk0"])
    assert boot_and_read_marker(d, "ova1") == "from-vmware"
    d.cli("vm", "delete", "ova1")

    # An OVF whose disk is missing from the package is refused before anything is made.
    broken = os.path.join(d.root, "broken.ova")
    with tarfile.open(broken, "w") as t:
        t.add(ovf, "appliance.ovf")
    assert "which the archive does not contain" in refused(d, "vm", "import", "ova2", "--ova", broken)
    assert not leftovers(d, "ova2")

    # A disk that is not what its manifest says (damaged in transit) is refused, and leaves nothing.
    with open(mf, "w") as f:
        f.write(f"SHA256(disk1.vmdk)= {'0' * 64}\n")
    damaged = os.path.join(d.root, "damaged.ova")
    with tarfile.open(damaged, "w", format=tarfile.USTAR_FORMAT) as t:
        t.add(ovf, "appliance.ovf")
        t.add(mf, "appliance.mf")
        t.add(vmdk, "disk1.vmdk")
    assert "does not match the SHA256 in the package's manifest" in refused(d, "vm", "import", "ova3", "--ova", damaged)
    assert not leftovers(d, "ova3")


def test_pampad_killed_mid_import_leaves_nothing(pampad):
    d = pampad
    raw = os.path.join(d.root, "big.raw")
    with open(raw, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(BLOCK))
    xva = os.path.join(d.root, "big.xva")
    write_xva(xva, [raw], label="big")
    os.unlink(raw)
    task = d.cli("vm", "import", "cut1", "--xva", xva, "--async").stdout.strip()
    assert task
    d.kill9()  # while its disk is being written (or before: either way the VM is recorded, unfinished)
    d.start()
    assert not leftovers(d, "cut1"), "the next start removes what an unfinished import made"
    assert not [f for f in os.listdir(d.pool_path()) if f.startswith("cut1")]
    d.cli("vm", "import", "cut1", "--xva", xva)  # and the name is free again
    assert [disk["volume"] for disk in d.vm("cut1")["disks"]] == ["cut1-disk0"]
    d.cli("vm", "delete", "cut1")


def test_p2v_copies_a_servers_disk_over_ssh_and_a_second_pass_copies_only_changes(pampad):
    """A physical server's disk (a loop device here) read over the real sshd: the volume equals the device byte for
    byte, zero ranges are not sent, and a second pass copies only the ranges written since the first."""
    from pampa_harness import Sshd
    d = pampad
    backing = os.path.join(d.root, "server-disk.img")
    with open(backing, "wb") as f:
        f.truncate(64 << 20)
        for mib in (0, 1, 7, 30, 63):  # data in five 1 MiB ranges, zeros elsewhere
            f.seek(mib << 20)
            f.write(os.urandom(300 << 10))
    dev = subprocess.run(["losetup", "--find", "--show", backing], check=True, capture_output=True,
                         text=True).stdout.strip()
    sshd = Sshd(d.root)
    try:
        url = f"ssh://root@127.0.0.1:{sshd.port}"
        ssh = ["--ssh-key", sshd.key, "--known-hosts", sshd.known_hosts]
        # Refused before anything is made: a device path with shell characters, an unknown host key.
        assert "is not a device path" in refused(d, "vm", "import", "phys", "--from-host", url, "--disk",
                                                 dev + ";reboot", *ssh)
        empty = os.path.join(d.root, "empty_known_hosts")
        open(empty, "w").close()
        assert "not in known_hosts" in refused(d, "vm", "import", "phys", "--from-host", url, "--disk", dev,
                                               "--ssh-key", sshd.key, "--known-hosts", empty)
        assert "no first P2V pass" in refused(d, "vm", "import", "phys", "--from-host", url, "--second-pass", *ssh)
        assert leftovers(d, "phys") == []

        d.cli("vm", "import", "phys", "--from-host", url, "--disk", dev, *ssh)
        vm = d.vm("phys")
        assert vm["cpus"] == os.cpu_count() and len(vm["disks"]) == 1 and len(vm["nics"]) == 1
        volume = d.volume_paths()["phys-disk0"]
        assert same_image(backing, volume), "the copy equals the server's disk"
        task = [t for t in d.cli_json("task", "list") if t["type"] == "vm-import" and t["target"] == "phys"][-1]
        log = d.cli_json("task", "show", task["id"])["log"]
        assert any("5 of 64 MiB ranges held data and were copied" in line for line in log), log

        # The server keeps running and writing: two ranges change, one becomes zeros.
        with open(dev, "r+b", buffering=0) as f:
            for at, data in (((7 << 20) + 512, os.urandom(4096)), (40 << 20, os.urandom(8192)),
                             (30 << 20, bytes(300 << 10))):  # range 30 is all zeros again
                f.seek(at)
                f.write(data)
            os.fsync(f.fileno())
        assert not same_image(backing, volume)
        d.cli("vm", "import", "phys", "--from-host", url, "--second-pass", *ssh)
        assert same_image(backing, volume), "the second pass brought every change"
        tasks = [t for t in d.cli_json("task", "list") if t["type"] == "vm-import" and t["target"] == "phys"]
        log = d.cli_json("task", "show", tasks[-1]["id"])["log"]
        assert any("3 of 64 MiB ranges changed since the last pass" in line for line in log), log
        # The server's firmware: this machine booted through BIOS (a UEFI server has /sys/firmware/efi).
        assert d.vm("phys")["firmware"] == ("uefi" if os.path.isdir("/sys/firmware/efi") else "bios")
        hashes = os.path.join(d.data, "vms", "phys.p2v.json")
        assert os.path.exists(hashes)
        d.cli("vm", "delete", "phys")
        assert not os.path.exists(hashes), "the second pass's hashes go with the VM"

        # A server without python3: the server hashes with dd | sha1sum and the data comes through SFTP.
        bare = os.path.join(d.root, "bare-bin")
        os.makedirs(bare)
        for tool in ("sh", "dd", "sha1sum"):
            os.symlink(shutil.which(tool), os.path.join(bare, tool))
        bare_sshd = Sshd(d.root, path=bare)
        try:
            d.cli("vm", "import", "bare", "--from-host", f"ssh://root@127.0.0.1:{bare_sshd.port}", "--disk", dev,
                  "--ssh-key", bare_sshd.key, "--known-hosts", bare_sshd.known_hosts)
        finally:
            bare_sshd.stop()
        assert same_image(backing, d.volume_paths()["bare-disk0"]), "the copy equals the server's disk"
        task = [t for t in d.cli_json("task", "list") if t["type"] == "vm-import" and t["target"] == "bare"][-1]
        log = d.cli_json("task", "show", task["id"])["log"]
        assert any("no python3" in line and "through SFTP" in line for line in log), log
        assert any("5 of 64 MiB ranges held data and were copied" in line for line in log), log
    finally:
        sshd.stop()
        subprocess.run(["losetup", "-d", dev])
