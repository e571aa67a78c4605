"""Snapshots of a real guest: disk-only while running (crash-consistent, fast),
with RAM (revert resumes the running guest at that instant), tree, delete while
running, and snapshots of a stopped VM."""
import json
import os
import subprocess
import time

import pytest


def write(d, vm, text):
    d.exec(vm, "sh", "-c", f"echo {text} > /mnt/state && sync")


def read(d, vm):
    return d.exec(vm, "cat", "/mnt/state").stdout.strip()


def task_of(d, args):
    return d.cli(*args, "--async").stdout.strip()


def wait_task(d, task, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = d.cli_json("task", "show", task)
        if t["state"] != "running":
            assert t["state"] == "succeeded", t
            return t
        time.sleep(0.2)
    raise AssertionError(f"task {task} still running")


@pytest.fixture(scope="module")
def snapvm(pampad):
    pampad.create_guest("snap", "--net", "none")
    pampad.cli("vm", "start", "snap")
    pampad.wait_console("snap", "pampa-guest: ready")
    yield pampad
    pampad.cli("vm", "stop", "snap", check=False)
    pampad.cli("vm", "delete", "snap", check=False)


def test_snapshots_revert_disks_and_ram(snapvm):
    d = snapvm
    write(d, "snap", "one")
    t = wait_task(d, task_of(d, ["snapshot", "create", "snap", "s1", "--description", "before two"]))
    assert t["result"]["seconds"] < 1.0  # disk-only, running: no pause worth the name
    assert d.vm("snap")["state"] == "running"
    write(d, "snap", "two")
    # The guest keeps a counter running in RAM: a RAM revert must bring that process back.
    d.exec("snap", "sh", "-c", "echo two-in-ram > /tmp/ram-only")
    wait_task(d, task_of(d, ["snapshot", "create", "snap", "s2", "--memory"]))
    write(d, "snap", "three")
    d.exec("snap", "sh", "-c", "echo three-in-ram > /tmp/ram-only")

    tree = d.cli_json("snapshot", "list", "snap")
    assert tree["current"] == "s2"
    parents = {s["name"]: s["parent"] for s in tree["snapshots"]}
    assert parents == {"s1": "", "s2": "s1"}
    text = d.cli("snapshot", "list", "snap").stdout
    assert "s1" in text and "[with RAM]" in text and "<- current" in text

    pid = d.vm("snap")["pid"]
    wait_task(d, task_of(d, ["snapshot", "revert", "snap", "s2"]))
    vm = d.vm("snap")
    assert vm["state"] == "running" and vm["pid"] == pid  # same QEMU, resumed at the instant of s2
    assert read(d, "snap") == "two"
    assert d.exec("snap", "cat", "/tmp/ram-only").stdout.strip() == "two-in-ram"

    # A disk-only snapshot of a running VM: the VM restarts from the old disks.
    wait_task(d, task_of(d, ["snapshot", "revert", "snap", "s1"]))
    assert d.vm("snap")["state"] == "running"
    d.wait_console("snap", "pampa-guest: ready")
    assert read(d, "snap") == "one"
    assert d.cli_json("snapshot", "list", "snap")["current"] == "s1"


def test_delete_while_running_keeps_the_guest_running(snapvm):
    d = snapvm
    pid = d.vm("snap")["pid"]
    d.cli("snapshot", "delete", "snap", "s2")
    names = [s["name"] for s in d.cli_json("snapshot", "list", "snap")["snapshots"]]
    assert names == ["s1"]
    vm = d.vm("snap")
    assert vm["state"] == "running" and vm["pid"] == pid
    assert d.exec("snap", "true").returncode == 0


def test_snapshots_of_a_stopped_vm_and_bad_requests(snapvm):
    d = snapvm
    r = d.cli("snapshot", "create", "snap", "s1", check=False)
    assert "already has a snapshot 's1'" in r.stderr
    r = d.cli("snapshot", "revert", "snap", "nope", check=False)
    assert "has no snapshot 'nope'" in r.stderr
    r = d.cli("snapshot", "create", "snap", "Bad Name", check=False)
    assert "invalid snapshot name" in r.stderr
    d.cli("vm", "stop", "snap")
    r = d.cli("snapshot", "create", "snap", "cold", "--memory", check=False)
    assert "--memory saves the RAM of a running VM" in r.stderr
    d.cli("snapshot", "create", "snap", "cold")
    d.cli("snapshot", "revert", "snap", "s1")
    assert d.vm("snap")["state"] == "stopped"
    d.cli("snapshot", "delete", "snap", "s1")
    tree = d.cli_json("snapshot", "list", "snap")
    assert [s["name"] for s in tree["snapshots"]] == ["cold"]
    assert tree["snapshots"][0]["parent"] == ""  # re-parented when s1 went


def test_a_vm_with_snapshots_backs_up_and_restores(snapvm):
    d = snapvm
    assert d.vm("snap")["state"] == "stopped"
    d.cli("repo", "add", "snaprepo", "--url", os.path.join(d.root, "snaprepo"), "--no-encryption")
    b = json.loads(d.cli("backup", "run", "snap", "--repo", "snaprepo", "--json").stdout)
    d.cli("backup", "restore", b["id"], "--repo", "snaprepo", "--as", "snapcopy")
    vols = {v["name"]: v["path"] for v in d.cli_json("volume", "list", "default")}
    # The restored disk holds the VM's current state, byte for byte (its snapshots stay with the original).
    r = subprocess.run(["qemu-img", "compare", "-q", vols["snap-disk0"], vols["snapcopy-disk0"]])
    assert r.returncode == 0
    assert [s["name"] for s in d.cli_json("snapshot", "list", "snap")["snapshots"]] == ["cold"]
    # A revert drops the backup's dirty bitmap (it could not see the revert), so the next backup reads everything.
    d.cli("snapshot", "revert", "snap", "cold")
    assert not d.cli_json("snapshot", "list", "snapcopy")["snapshots"]
    d.cli("vm", "delete", "snapcopy")
    d.cli("vm", "start", "snap")
    d.wait_console("snap", "pampa-guest: ready")
    running = json.loads(d.cli("backup", "run", "snap", "--repo", "snaprepo", "--json").stdout)
    assert running["incremental"] is False and any("missing" in n for n in running["notes"])
    d.cli("snapshot", "create", "snap", "hot", "--memory")
    d.cli("snapshot", "revert", "snap", "hot")  # snapshot-load in the running QEMU, bitmap and all
    assert d.vm("snap")["state"] == "running"
    assert d.exec("snap", "echo", "alive").stdout == "alive\n"
    after = json.loads(d.cli("backup", "run", "snap", "--repo", "snaprepo", "--json").stdout)
    assert after["incremental"] is False
