"""Bad input gets a clear error and changes nothing."""
import os
import stat
import subprocess

import pytest

from pampa_harness import GUEST


def snapshot(d):
    vols = sorted(v["name"] for v in d.cli_json("volume", "list", "default"))
    return (sorted(v["name"] for v in d.vms()), vols, sorted(p["name"] for p in d.cli_json("pool", "list")),
            sorted(n["name"] for n in d.cli_json("net", "list")))


@pytest.mark.parametrize("args,message", [
    (["vm", "create", "Web", "--cpus", "1", "--memory", "256M"], "invalid vm name 'Web'"),
    (["vm", "create", "-x", "--cpus", "1", "--memory", "256M"], None),
    (["vm", "create", "a" * 64, "--cpus", "1", "--memory", "256M"], "longer than 63"),
    (["vm", "create", "web_1", "--cpus", "1", "--memory", "256M"], "character '_' is not allowed"),
    (["vm", "create", "ok", "--cpus", "0", "--memory", "256M"], "'cpus' must be an integer from 1 to 64"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "12 parsecs"], "invalid size"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "8K"], "between 16 MiB and 1 TiB"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--disk", "10X"], "invalid size '10X'"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--pool", "nope"], "pool 'nope' does not exist"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--net", "nonet"], "network 'nonet' does not exist"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--firmware", "coreboot"], "firmware 'coreboot'"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--disk-image", "/etc/passwd"],
     "outside the directories pampad may read from"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--kernel", "/boot/../etc/shadow"],
     "outside the directories"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--disk-image", GUEST + "/missing.qcow2"],
     "no such file"),
    (["vm", "create", "ok", "--cpus", "1", "--memory", "256M", "--initrd", GUEST + "/initrd.img"], "needs a kernel"),
    (["vm", "start", "ghost"], "vm 'ghost' does not exist"),
    (["vm", "show", "Bad!"], "invalid vm name"),
    (["pool", "create", "p1", "--path", "/tmp/a,b"], "may not contain commas"),
    (["pool", "create", "default", "--path", "/tmp/pampa-other"], "already exists"),
    (["pool", "delete", "nope"], "does not exist"),
    (["volume", "create", "default", "v", "--size", "1G", "--format", "vdi"], "format 'vdi' is not supported"),
    (["volume", "create", "default", "v", "--size", "-5G"], "invalid size"),
    (["net", "create", "n1", "--subnet", "10.300.0.0/24"], "invalid subnet"),
    (["net", "create", "n1", "--subnet", "10.214.0.1/24"], "host bits are set"),
    # Half of whatever /24 the default network got (a bridge left on the host may have moved it).
    (["net", "create", "n1", "--subnet", "DEFAULT/25"], "overlaps network 'default'"),
    (["net", "create", "n1", "--bridge", "nosuchbr0"], "not an existing bridge"),
    (["net", "create", "n1"], "needs a subnet"),
    (["task", "show", "0000"], "does not exist"),
])
def test_cli_rejects_bad_input_and_changes_nothing(pampad, args, message):
    before = snapshot(pampad)
    if "DEFAULT/25" in args:
        default = next(n for n in pampad.cli_json("net", "list") if n["name"] == "default")
        args = [a.replace("DEFAULT/25", default["subnet"].split("/")[0] + "/25") for a in args]
    r = pampad.cli(*args, check=False)
    assert r.returncode != 0, r.stdout
    if message:
        assert message in r.stderr, r.stderr
    assert snapshot(pampad) == before


def test_image_that_is_not_what_it_claims_is_refused(pampad):
    fake = os.path.join(pampad.root, "fake.vmdk")
    with open(fake, "w") as f:
        f.write("this is text, not a VMware disk\n" * 100)
    r = pampad.cli("vm", "create", "fake", "--cpus", "1", "--memory", "256M", "--disk-image", fake, check=False)
    assert r.returncode != 0
    assert "named like a vmdk image but contains raw data" in r.stderr
    r = pampad.cli("volume", "import", "default", "fake", fake, check=False)
    assert "named like a vmdk image" in r.stderr
    assert not any(v["name"] == "fake" for v in pampad.vms())


def test_image_that_names_other_files_is_refused(pampad):
    # A VMDK descriptor or a qcow2 with an external data file could make an
    # import read any file of the host.
    flat = os.path.join(pampad.root, "flat.vmdk")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", flat, "1M"],
                   check=True)
    r = pampad.cli("vm", "create", "flat", "--cpus", "1", "--memory", "256M", "--disk-image", flat, "--net", "none", check=False)
    assert r.returncode != 0 and "'monolithicFlat' VMDK, whose data lies in other files" in r.stderr
    split = os.path.join(pampad.root, "split.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=" + split + ".data", split, "1M"],
                   check=True)
    r = pampad.cli("volume", "import", "default", "split", split, check=False)
    assert r.returncode != 0 and "keeps its data in another file" in r.stderr
    assert not [v for v in pampad.cli_json("volume", "list", "default") if v["name"] in ("flat-disk0", "split")]


def test_image_with_a_backing_file_is_refused(pampad):
    overlay = os.path.join(pampad.root, "overlay.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", overlay],
                   check=True)
    r = pampad.cli("volume", "import", "default", "over", overlay, check=False)
    assert r.returncode != 0
    assert "depends on a backing file" in r.stderr


def test_api_rejects_unknown_and_malformed_fields(pampad):
    st, body = pampad.api("POST", "/api/v1/vms", {"name": "x", "cpus": 1, "memory": "256M", "colour": "red"})
    assert st == 400 and "unknown field 'colour'" in body["error"]
    st, body = pampad.api("POST", "/api/v1/vms", raw_body=b"{not json")
    assert st == 400 and "not valid JSON" in body["error"]
    st, body = pampad.api("POST", "/api/v1/vms", {"cpus": 1, "memory": "256M"})
    assert st == 400 and "'name' is required" in body["error"]
    st, body = pampad.api("POST", "/api/v1/vms", {"name": "x", "cpus": "two", "memory": "256M"})
    assert st == 400 and "'cpus' must be" in body["error"]
    st, body = pampad.api("POST", "/api/v1/vms/x/exec", {"command": "ls -la"})
    assert st == 400 and "non-empty array" in body["error"]
    st, body = pampad.api("POST", "/api/v1/vms/x/shutdown", {"timeout": -1})
    assert st == 400
    st, body = pampad.api("GET", "/api/v1/nothing")
    assert st == 404
    st, body = pampad.api("PUT", "/api/v1/vms")
    assert st == 405
    assert not any(v["name"] == "x" for v in pampad.vms())


def test_tcp_api_needs_the_token(pampad):
    st, body = pampad.api("GET", "/api/v1/vms", token="")
    assert st == 401 and "token" in body["error"]
    st, _ = pampad.api("GET", "/api/v1/vms", token="0" * 64)
    assert st == 401
    st, _ = pampad.api("GET", "/api/v1/vms")
    assert st == 200
    r = pampad.cli("--url", f"http://127.0.0.1:{pampad.port}", "--token", "wrong", "vm", "list", check=False)
    assert r.returncode != 0 and "token" in r.stderr
    r = pampad.cli("--url", f"http://127.0.0.1:{pampad.port}", "--token", pampad.token, "vm", "list")
    assert r.stdout.startswith("NAME")


def test_secrets_and_socket_are_root_only(pampad):
    assert stat.S_IMODE(os.stat(os.path.join(pampad.data, "token")).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(pampad.sock).st_mode) == 0o600


def test_running_vm_cannot_be_deleted_or_edited_and_its_disk_is_protected(pampad):
    pampad.cli("vm", "create", "busyvm", "--cpus", "1", "--memory", "128M", "--disk", "64M", "--net", "default",
               "--kernel", GUEST + "/vmlinuz", "--initrd", GUEST + "/initrd.img", "--append", "console=ttyS0 quiet")
    try:
        pampad.cli("vm", "start", "busyvm")
        r = pampad.cli("vm", "delete", "busyvm", check=False)
        assert r.returncode != 0 and "stop it first" in r.stderr
        r = pampad.cli("vm", "edit", "busyvm", "--cpus", "2", check=False)
        assert r.returncode != 0 and "stop it before editing" in r.stderr
        r = pampad.cli("vm", "start", "busyvm", check=False)
        assert "already running" in r.stderr
        r = pampad.cli("volume", "delete", "default", "busyvm-disk0", check=False)
        assert r.returncode != 0 and "belongs to vm 'busyvm'" in r.stderr
        # Its disk grows through the running VM (live), and never shrinks.
        r = pampad.cli("volume", "resize", "default", "busyvm-disk0", "--size", "128M", check=False)
        assert r.returncode == 0 and "to 128.0 MiB" in r.stdout, r.stderr
        r = pampad.cli("volume", "resize", "default", "busyvm-disk0", "64M", check=False)
        assert r.returncode != 0 and "only growing is allowed" in r.stderr
        r = pampad.cli("net", "delete", "default", check=False)
        assert r.returncode != 0 and "is used by vm 'busyvm'" in r.stderr
        assert pampad.vm("busyvm")["state"] == "running"
        pampad.cli("vm", "stop", "busyvm")
        pampad.cli("vm", "edit", "busyvm", "--cpus", "2", "--memory", "192M")
        vm = pampad.vm("busyvm")
        assert vm["cpus"] == 2 and vm["memory_mib"] == 192
    finally:
        pampad.cli("vm", "stop", "busyvm", check=False)
        pampad.cli("vm", "delete", "busyvm", check=False)
    assert not any(v["name"] == "busyvm-disk0" for v in pampad.cli_json("volume", "list", "default"))
