"""Provisioning on a real guest: clones, templates, renames, cloud-init, CPU
model, topology and boot order. Clones and templates: a full clone of a running
VM's snapshot boots with the snapshot's data and its own identity; a template
never starts and linked clones read from it without changing it; a rename
keeps the snapshots and the backup chain."""
import json
import os
import subprocess


def write(d, vm, text):
    d.exec(vm, "sh", "-c", f"echo {text} > /mnt/state && sync")


def read(d, vm):
    return d.exec(vm, "cat", "/mnt/state").stdout.strip()


def boot(d, vm):
    d.cli("vm", "start", vm)
    d.wait_console(vm, "pampa-guest: ready")


def refused(d, *args):
    r = d.cli(*args, check=False)
    assert r.returncode != 0, f"pampa {' '.join(args)} was not refused:\n{r.stdout}"
    return r.stderr


def backing_file(path):
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True,
                                     text=True, check=True).stdout)
    return info.get("backing-filename", "")


def test_full_clones_templates_and_linked_clones(pampad):
    d = pampad
    d.create_guest("orig")
    boot(d, "orig")
    write(d, "orig", "first")
    d.cli("snapshot", "create", "orig", "s1")
    write(d, "orig", "second")

    # A running VM is copied only from one of its snapshots.
    assert "--snapshot" in refused(d, "vm", "clone", "orig", "c1")
    assert "no snapshot 'nope'" in refused(d, "vm", "clone", "orig", "c1", "--snapshot", "nope")
    assert "--linked or --snapshot" in refused(d, "vm", "clone", "orig", "c1", "--linked", "--snapshot", "s1")
    assert "not a template" in refused(d, "vm", "clone", "orig", "c1", "--linked")
    d.cli("vm", "clone", "orig", "c1", "--snapshot", "s1")
    orig, c1 = d.vm("orig"), d.vm("c1")
    assert c1["uuid"] != orig["uuid"]
    assert [n["mac"] for n in c1["nics"]] != [n["mac"] for n in orig["nics"]]
    assert [disk["volume"] for disk in c1["disks"]] == ["c1-disk0"]
    assert c1["state"] == "stopped" and not c1["template"]
    assert "already exists" in refused(d, "vm", "clone", "orig", "c1", "--snapshot", "s1")
    boot(d, "c1")
    assert read(d, "c1") == "first", "the clone has the disks as the snapshot had them"
    assert read(d, "orig") == "second"
    assert "stop it first" in refused(d, "vm", "rename", "c1", "c2")
    d.cli("vm", "stop", "c1")

    # A template: one fixed state, never started.
    d.cli("vm", "stop", "orig")
    assert "snapshot" in refused(d, "vm", "template", "orig")
    d.cli("snapshot", "delete", "orig", "s1")
    d.cli("vm", "template", "orig")
    t = d.vm("orig")
    assert t["template"] and "start" not in t["actions"] and "clone" in t["actions"]
    assert "template" in refused(d, "vm", "start", "orig")
    assert "template" in refused(d, "snapshot", "create", "orig", "s2")
    assert "already a template" in refused(d, "vm", "template", "orig")
    assert any(v["name"] == "orig" and v["template"] for v in d.vms())

    # Linked clones: overlays on the template's disk, made at once.
    d.cli("vm", "clone", "orig", "l1", "--linked")
    l1 = d.vm("l1")
    assert l1["disks"][0]["base"] == "default/orig-disk0"
    vols = d.volume_paths()
    assert backing_file(vols["l1-disk0"]) == vols["orig-disk0"]
    boot(d, "l1")
    assert read(d, "l1") == "second"
    write(d, "l1", "linked")
    d.cli("vm", "stop", "l1")
    assert "linked clone(s) l1" in refused(d, "vm", "delete", "orig")

    # The template did not change: a full clone of it still has its data.
    d.cli("vm", "clone", "orig", "f1")
    assert not d.vm("f1")["disks"][0].get("base")
    assert backing_file(d.volume_paths()["f1-disk0"]) == ""

    # A renamed linked clone keeps its disk and its link.
    d.cli("vm", "rename", "l1", "l2")
    assert "does not exist" in refused(d, "vm", "show", "l1")
    assert d.vm("l2")["disks"][0]["base"] == "default/orig-disk0"
    boot(d, "l2")
    assert read(d, "l2") == "linked"
    d.cli("vm", "stop", "l2")
    for vm in ("l2", "f1", "c1"):
        d.cli("vm", "delete", vm)
    d.cli("vm", "delete", "orig")  # no linked clone left
    assert not [v for v in d.vms() if v["name"] in ("orig", "c1", "f1", "l1", "l2")]
    assert not [v for v in d.volume_paths() if v.split("-disk")[0] in ("orig", "c1", "f1", "l1", "l2")]


def test_rename_keeps_snapshots_and_the_backup_chain(pampad, tmp_path):
    d = pampad
    d.create_guest("ren", "--net", "none")
    d.cli("snapshot", "create", "ren", "keep")
    d.cli("repo", "add", "ren-repo", "--url", str(tmp_path / "repo"), "--no-encryption")
    first = json.loads(d.cli("backup", "run", "ren", "--repo", "ren-repo", "--json").stdout)
    assert not first["incremental"]
    assert "already has that name" in refused(d, "vm", "rename", "ren", "ren")
    d.cli("vm", "rename", "ren", "ren2")
    tree = d.cli_json("snapshot", "list", "ren2")
    assert tree["current"] == "keep" and [s["name"] for s in tree["snapshots"]] == ["keep"]
    second = json.loads(d.cli("backup", "run", "ren2", "--repo", "ren-repo", "--json").stdout)
    assert second["incremental"], second
    assert second["bytes_read"] < first["bytes_read"] / 10
    assert "ren-disk0" in [disk["volume"] for disk in d.vm("ren2")["disks"]]
    boot(d, "ren2")
    d.cli("vm", "stop", "ren2")
    d.cli("snapshot", "delete", "ren2", "keep")
    d.cli("vm", "delete", "ren2")


def iso_file(iso, name):
    return subprocess.run(["isoinfo", "-i", iso, "-R", "-x", "/" + name], capture_output=True, text=True,
                          check=True).stdout


def qemu_args(d, vm):
    with open(f"/proc/{d.vm(vm)['pid']}/cmdline", "rb") as f:
        return f.read().decode().split("\0")


def test_cloud_init_seed_is_made_at_each_start_and_follows_edits(pampad, tmp_path):
    d = pampad
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnJ7f0tUuE0Rg3rV1mJq9z8y7x6w5v4u3t2s1r0q9p8 ana@desk"
    (tmp_path / "id.pub").write_text(f"# ana's key\n{key}\n")
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "junk.pub").write_text("this is not a key\n")
    d.create_guest("ci", "--ci-user", "ana", "--ci-ssh-key", str(tmp_path / "id.pub"), "--ci-password-file",
                   str(tmp_path / "pw"), "--ci-ip", "10.213.0.50/24", "--ci-gw", "10.213.0.1", "--ci-dns",
                   "10.213.0.1", "--ci-hostname", "ci-web")
    vm = d.vm("ci")
    assert vm["cloud_init"]["user"] == "ana" and vm["cloud_init"]["ssh_keys"] == [key]
    assert vm["cloud_init"]["password_hash"].startswith("$6$") and "s3cret" not in json.dumps(vm)
    assert "cloud-init: user ana, hostname ci-web, ip 10.213.0.50/24" in d.cli("vm", "show", "ci").stdout

    boot(d, "ci")
    iso = os.path.join(d.data, "vms", "ci.cidata.iso")
    assert "Volume id: cidata" in subprocess.run(["isoinfo", "-d", "-i", iso], capture_output=True, text=True).stdout
    assert any(iso in a for a in qemu_args(d, "ci")), "the seed is attached as a CD"
    user = iso_file(iso, "user-data")
    assert user.startswith("#cloud-config\n") and "ana@desk" in user and "s3cret" not in user
    net = json.loads(iso_file(iso, "network-config"))
    assert net["ethernets"]["eth0"]["match"]["macaddress"] == vm["nics"][0]["mac"]
    assert net["ethernets"]["eth0"]["addresses"] == ["10.213.0.50/24"]
    first = json.loads(iso_file(iso, "meta-data"))
    assert first["local-hostname"] == "ci-web"

    # Bad input is refused and changes nothing.
    assert "10.0.0.5/24" in refused(d, "vm", "edit", "ci", "--ci-ip", "10.0.0.5")
    assert "not an OpenSSH public key" in refused(d, "vm", "edit", "ci", "--ci-ssh-key", str(tmp_path / "junk.pub"))
    assert "static address" in refused(d, "vm", "edit", "ci", "--ci-ip", "dhcp")
    assert d.vm("ci")["cloud_init"] == vm["cloud_init"]

    # An edit while it runs reaches the guest at its next start, with a new instance id.
    assert "next start" in d.cli("vm", "edit", "ci", "--ci-hostname", "ci-two").stdout
    d.cli("vm", "stop", "ci")
    boot(d, "ci")
    second = json.loads(iso_file(iso, "meta-data"))
    assert second["local-hostname"] == "ci-two" and second["instance-id"] != first["instance-id"]
    d.cli("vm", "stop", "ci")

    # A clone gets its own settings on top of the source's.
    d.cli("vm", "clone", "ci", "ci-clone", "--ci-hostname", "ci-three", "--ci-ip", "10.213.0.51/24")
    clone = d.vm("ci-clone")["cloud_init"]
    assert clone["hostname"] == "ci-three" and clone["ip"] == "10.213.0.51/24" and clone["user"] == "ana"
    d.cli("vm", "delete", "ci-clone")

    d.cli("vm", "edit", "ci", "--no-cloud-init")
    assert "cloud_init" not in d.vm("ci")
    boot(d, "ci")
    assert not any("cidata" in a for a in qemu_args(d, "ci"))
    d.cli("vm", "stop", "ci")
    d.cli("vm", "delete", "ci")
    assert not os.path.exists(iso)


def test_cpu_model_topology_and_boot_order(pampad):
    d = pampad
    d.create_guest("hw", "--net", "none")
    assert "no CPU model 'pentium9'" in refused(d, "vm", "edit", "hw", "--cpu-model", "pentium9")
    assert "not disk, cdrom or net" in refused(d, "vm", "edit", "hw", "--boot-order", "disk,floppy")
    assert "does not match" in refused(d, "vm", "edit", "hw", "--cpus", "3", "--cores", "2")
    d.cli("vm", "edit", "hw", "--cpu-model", "max", "--cores", "2", "--boot-order", "net,disk")
    show = d.cli("vm", "show", "hw").stdout
    assert "cpus:      2 (1 sockets x 2 cores x 1 threads, model max)" in show and "boot:      net,disk" in show
    boot(d, "hw")
    args = qemu_args(d, "hw")
    assert args[args.index("-cpu") + 1] == "max"
    assert args[args.index("-smp") + 1] == "2,sockets=1,cores=2,threads=1"
    assert any('"bootindex":1' in a and '"id":"virtio-disk0"' in a for a in args)  # no NIC: the disk comes first
    assert d.exec("hw", "cat", "/sys/devices/system/cpu/online").stdout.strip() == "0-1"
    assert "stop it before editing" in refused(d, "vm", "edit", "hw", "--cores", "1")
    d.cli("vm", "stop", "hw")
    d.cli("vm", "edit", "hw", "--cpus", "1", "--cpu-model", "")  # the count alone: QEMU's own layout again
    vm = d.vm("hw")
    assert vm["cpus"] == 1 and "topology" not in vm and vm["cpu_model"] == ""
    d.cli("vm", "delete", "hw")
