"""Two real guests under TCG on the default NAT network: exec, console, networking,
pause/resume, kill -9 of pampad with re-attach, ACPI shutdown, crash detection."""
import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import time

import pytest

from pampa_harness import PAMPA, WebSocket, qemu_alive


@pytest.fixture(scope="module")
def guests(pampad):
    for name in ("ga", "gb"):
        pampad.create_guest(name)
        pampad.cli("vm", "start", name)
    for name in ("ga", "gb"):
        pampad.wait_console(name, "pampa-guest: ready")
    yield pampad
    for name in ("ga", "gb"):
        if pampad.vm(name)["state"] != "stopped":
            pampad.cli("vm", "stop", name, check=False)
        pampad.cli("vm", "delete", name, check=False)


def guest_ip(d, name):
    out = d.exec(name, "ip", "-4", "-o", "addr", "show", "eth0").stdout
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert m, out
    return m.group(1)


def test_list_shows_running_guests(guests):
    vms = {v["name"]: v for v in guests.vms()}
    for name in ("ga", "gb"):
        v = vms[name]
        assert v["state"] == "running"
        assert v["cpus"] == 1 and v["memory_mib"] == 256
        assert v["host"]
        assert v["nics"][0]["mac"].startswith("52:54:00:")


def test_guests_reach_each_other_on_nat_network(guests):
    ip_b = guest_ip(guests, "gb")
    assert ip_b.startswith("10.213.")
    r = guests.exec("ga", "ping", "-c", "2", "-W", "3", ip_b, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 packets received" in r.stdout


def test_exec_returns_stdout_stderr_and_exit_status(guests):
    r = guests.exec("ga", "sh", "-c", "echo to-out; echo to-err >&2; exit 3", check=False)
    assert r.returncode == 3
    assert r.stdout == "to-out\n"
    assert r.stderr == "to-err\n"
    # The guest's first disk is mounted at /mnt.
    assert guests.exec("ga", "cat", "/mnt/README").stdout == "pampa test disk\n"
    j = json.loads(guests.cli("vm", "exec", "ga", "--json", "--", "echo", "hi").stdout)
    assert j["exit_code"] == 0 and j["stdout"] == "hi\n"


def test_vm_ip_shows_the_guests_address_from_its_agent_and_from_dhcp(guests):
    ip = guest_ip(guests, "ga")
    out = guests.cli("vm", "ip", "ga").stdout
    assert f"eth0\t{ip}/" in out, out
    j = guests.cli_json("vm", "ip", "ga", "--json")
    assert j["source"] == "agent"
    assert f"address:   eth0 {ip}/" in guests.cli("vm", "show", "ga").stdout
    wide = [line for line in guests.cli("vm", "list", "--wide").stdout.splitlines() if line.startswith("ga ")]
    assert wide and f"{ip}/" in wide[0], wide
    listed = {v["name"]: v for v in guests.cli_json("vm", "list", "--wide")}
    assert any(a["address"].startswith(ip + "/") for a in listed["ga"]["addresses"])
    # Paused, the agent cannot answer: the lease dnsmasq gave the NIC's MAC.
    guests.cli("vm", "pause", "ga")
    try:
        j = guests.cli_json("vm", "ip", "ga", "--json")
        assert j["source"] == "dhcp", j
        assert j["interfaces"][0]["addresses"] == [ip]
        assert j["interfaces"][0]["mac"] == guests.vm("ga")["nics"][0]["mac"]
    finally:
        guests.cli("vm", "resume", "ga")


def test_a_disk_grows_while_the_guest_runs(guests):
    def sectors():
        return int(guests.exec("gb", "cat", "/sys/block/vda/size").stdout)
    before = sectors()
    # A bare number would once have been bytes: refused, with what to write.
    r = guests.cli("vm", "disk", "resize", "gb", "0", "100", check=False)
    assert r.returncode != 0 and "has no unit: write 100G or 100M" in r.stderr, r.stderr
    r = guests.cli("vm", "disk", "resize", "gb", "0", "1M", check=False)
    assert r.returncode != 0 and "only growing is allowed" in r.stderr, r.stderr
    r = guests.cli("vm", "disk", "resize", "gb", "3", "+1G", check=False)
    assert r.returncode != 0 and "has no disk 3" in r.stderr, r.stderr
    assert "is now" in guests.cli("vm", "disk", "resize", "gb", "0", "+64M").stdout
    deadline = time.time() + 30
    while sectors() != before + 64 * 2048 and time.time() < deadline:
        time.sleep(0.5)
    assert sectors() == before + 64 * 2048
    # The volume command grows the same disk through its VM, live too.
    disk = guests.vm("gb")["disks"][0]
    guests.cli("volume", "resize", disk["pool"], disk["volume"], "+64M")
    deadline = time.time() + 30
    while sectors() != before + 128 * 2048 and time.time() < deadline:
        time.sleep(0.5)
    assert sectors() == before + 128 * 2048
    assert guests.exec("gb", "true").returncode == 0


def test_agent_answers(guests):
    assert guests.cli("vm", "agent", "ga").stdout.strip() == "agent answers"
    assert guests.cli_json("vm", "agent", "ga")["agent"] is True


def test_console_dump_and_interactive_attach(guests):
    assert "pampa-guest: ready" in guests.console("ga")
    # Attach through the WebSocket console with a real terminal, type a command, detach with Ctrl-].
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(PAMPA, [PAMPA, "--socket", guests.sock, "vm", "console", "ga"])
    out = b""
    try:
        time.sleep(1)
        os.write(fd, b"echo marker-$((6*7))\r")
        deadline = time.time() + 30
        while b"marker-42" not in out and time.time() < deadline:
            r, _, _ = select.select([fd], [], [], 1)
            if r:
                out += os.read(fd, 4096)
        os.write(fd, b"\x1d")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert b"marker-42" in out
    assert os.WEXITSTATUS(status) == 0


def test_event_stream_announces_pause_and_resume(guests):
    ws = WebSocket(guests.sock, "/api/v1/events")
    assert ws.status == 101
    guests.cli("vm", "pause", "ga")
    assert guests.vm("ga")["state"] == "paused"
    guests.cli("vm", "resume", "ga")
    seen = []
    deadline = time.time() + 10
    while time.time() < deadline and ("paused", "running") != tuple(seen[-2:]):
        ev = json.loads(ws.recv())
        if ev.get("type") == "vm" and ev.get("vm") == "ga":
            seen.append(ev["state"])
    ws.close()
    assert seen[-2:] == ["paused", "running"]
    assert guests.exec("ga", "true").returncode == 0


def test_vnc_console_is_proxied_over_a_websocket(guests):
    ws = WebSocket(guests.sock, "/api/v1/vms/ga/vnc")
    assert ws.status == 101
    assert ws.recv().startswith(b"RFB 003.008")
    ws.close()
    # A stopped VM has no console to attach to.
    bad = WebSocket(guests.sock, "/api/v1/vms/nosuchvm/console")
    assert bad.status == 404
    bad.close()


def test_vm_vnc_gives_a_viewer_a_local_address(guests):
    relay = subprocess.Popen([PAMPA, "--socket", guests.sock, "vm", "vnc", "ga", "--wait", "30"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = relay.stdout.readline().strip()
        assert line.startswith("127.0.0.1:"), f"{line!r}: {relay.stderr.read() if relay.poll() is not None else ''}"
        host, port = line.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as viewer:
            assert viewer.recv(12) == b"RFB 003.008\n"  # the server speaks first, through the relay
            viewer.sendall(b"RFB 003.008\n")
            assert viewer.recv(1)  # the security types: the viewer's bytes reached QEMU
        assert relay.wait(timeout=10) == 0, relay.stderr.read()
    finally:
        relay.kill()
    r = guests.cli("vm", "vnc", "nosuchvm", check=False)
    assert r.returncode != 0 and "does not exist" in r.stderr
    r = subprocess.run([PAMPA, "--socket", guests.sock, "vm", "vnc", "ga", "--wait", "1"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0 and "no VNC viewer connected within 1 s" in r.stderr


def test_pause_stops_the_guest_clock(guests):
    guests.cli("vm", "pause", "gb")
    assert guests.vm("gb")["state"] == "paused"
    # A paused guest does not run: its agent cannot answer.
    r = guests.cli("vm", "exec", "gb", "--timeout", "2", "--", "true", check=False)
    assert r.returncode != 0
    guests.cli("vm", "resume", "gb")
    assert guests.vm("gb")["state"] == "running"
    assert guests.exec("gb", "true").returncode == 0


def test_kill9_of_pampad_leaves_vms_running_and_restart_reattaches(guests):
    pids = {v["name"]: v["pid"] for v in guests.vms()}
    guests.kill9()
    time.sleep(1)
    for name in ("ga", "gb"):
        assert qemu_alive(pids[name]), f"{name} died with pampad"
    guests.start()
    vms = {v["name"]: v for v in guests.vms()}
    for name in ("ga", "gb"):
        assert vms[name]["state"] == "running"
        assert vms[name]["pid"] == pids[name]
    assert guests.exec("ga", "echo", "back").stdout == "back\n"


def test_second_operation_is_refused_while_shutdown_runs(guests):
    r = guests.cli("vm", "shutdown", "gb", "--async")
    task = r.stdout.strip()
    busy = guests.cli("vm", "pause", "gb", check=False)
    assert busy.returncode != 0
    assert "busy: shutdown in progress" in busy.stderr
    deadline = time.time() + 60
    while guests.cli_json("task", "show", task)["state"] == "running" and time.time() < deadline:
        time.sleep(0.3)
    t = guests.cli_json("task", "show", task)
    assert t["state"] == "succeeded"
    assert t["result"]["forced"] is False  # the guest powered off by itself on ACPI
    assert guests.vm("gb")["state"] == "stopped"
    assert "pampa-guest: powering off" in guests.console("gb")


def test_vm_whose_qemu_dies_is_crashed_with_qemus_reason(guests):
    guests.cli("vm", "start", "gb")
    pid = guests.vm("gb")["pid"]
    os.kill(pid, signal.SIGTERM)
    vm = guests.wait_state("gb", "crashed", timeout=20)
    assert "terminating on signal 15" in vm["reason"]
    # A crashed VM stays crashed across a pampad restart, and can be started again.
    guests.stop()
    guests.start()
    assert guests.vm("gb")["state"] == "crashed"
    guests.cli("vm", "start", "gb")
    assert guests.vm("gb")["state"] == "running"
    guests.cli("vm", "stop", "gb")
    assert guests.vm("gb")["state"] == "stopped"
    assert not qemu_alive(pid)


def test_acpi_shutdown_powers_off_cleanly(guests):
    r = guests.cli("vm", "shutdown", "ga", "--timeout", "60")
    assert r.stdout.strip() == "shut down ga"
    assert guests.vm("ga")["state"] == "stopped"


def test_shutdown_of_a_guest_that_ignores_acpi_is_forced_after_timeout_or_cancel(pampad):
    from pampa_harness import GUEST
    # A kernel without its initrd panics and never answers the power button.
    pampad.cli("vm", "create", "stubborn", "--cpus", "1", "--memory", "128M", "--net", "none",
               "--kernel", GUEST + "/vmlinuz", "--append", "console=ttyS0 quiet")
    try:
        pampad.cli("vm", "start", "stubborn")
        t0 = time.time()
        r = pampad.cli("vm", "shutdown", "stubborn", "--timeout", "3")
        assert r.stdout.strip() == "forced off stubborn"
        assert 3 <= time.time() - t0 < 15
        assert pampad.vm("stubborn")["state"] == "stopped"
        # The same through `task cancel`: cancelling the shutdown forces the VM off.
        pampad.cli("vm", "start", "stubborn")
        task = pampad.cli("vm", "shutdown", "stubborn", "--timeout", "600", "--async").stdout.strip()
        time.sleep(1)
        assert pampad.cli_json("task", "show", task)["state"] == "running"
        pampad.cli("task", "cancel", task)
        deadline = time.time() + 20
        while pampad.cli_json("task", "show", task)["state"] == "running" and time.time() < deadline:
            time.sleep(0.2)
        t = pampad.cli_json("task", "show", task)
        assert t["result"]["forced"] is True
        assert any("cancelled" in line for line in t["log"])
        assert pampad.vm("stubborn")["state"] == "stopped"
    finally:
        pampad.cli("vm", "stop", "stubborn", check=False)
        pampad.cli("vm", "delete", "stubborn", check=False)
