"""What a user of the daemon relies on without thinking about it: VMs and dnsmasq hold nothing of
pampad's, pampad restarts on its own port while VMs run, the CLI gives up on a silent pampad,
a VM larger than the host is refused before QEMU runs, readers never wait behind long
operations, an interrupted restore leaves nothing half-made, a cancelled task says so.

Each test starts its own pampad (its own subnet), and ends everything it started."""
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from pampa_harness import (APPEND, GUEST, PAMPA, Pampad, disk_with_random_tail, fd_table, format_fd_table, free_port, holders_of,
                           listening_socket_inodes, qemu_alive)

MiB = 1 << 20
KERNEL = ["--kernel", os.path.join(GUEST, "vmlinuz"), "--initrd", os.path.join(GUEST, "initrd.img"), "--append", APPEND]


@pytest.fixture
def fresh():
    """Starts pampad instances for one test; destroys them (VMs, dnsmasq, bridges and all) after it."""
    made = []

    def start(subnet, **kw):
        d = Pampad(subnet=subnet, **kw)
        made.append(d)
        return d.start()

    yield start
    for d in made:
        d.destroy()


# --- 1 -------------------------------------------------------------------------------------------

# Devices any QEMU or dnsmasq may hold.
DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/kvm", "/dev/net/tun", "/dev/vhost-net", "/dev/urandom",
           "/dev/random"}


def foreign_descriptors(table, own_files, own_dirs, pampad_files, pampad_listening, pampad_inodes):
    """The entries of an fd table that are not the process's own: (fd, target, why)."""
    bad = []
    for fd, target in table.items():
        path = target.removesuffix(" (deleted)")
        m = re.fullmatch(r"(socket|pipe):\[(\d+)\]", path)
        if path in pampad_files:
            bad.append((fd, target, "pampad's own file"))
        elif m and int(m.group(2)) in pampad_listening:
            bad.append((fd, target, "pampad's listening API socket"))
        elif m and int(m.group(2)) in pampad_inodes:
            bad.append((fd, target, f"a {m.group(1)} pampad holds too (inherited)"))
        elif m or path.startswith("anon_inode:") or path.startswith("/memfd:") or path in DEVICES:
            continue
        elif path in own_files or any(path.startswith(d + "/") for d in own_dirs):
            continue
        else:
            bad.append((fd, target, "not this process's file"))
    return bad


def test_vm_and_dnsmasq_hold_only_their_own_descriptors(fresh):
    d = fresh("10.216.1.0/24")
    d.create_guest("fds")  # with a NIC on the default NAT network
    d.cli("vm", "start", "fds")
    vm = d.vm("fds")
    assert vm["state"] == "running" and vm["nics"], vm
    qemu = vm["pid"]
    run_dir = os.path.join(d.root, "vm", vm["uuid"][:8])
    assert os.path.isdir(run_dir), run_dir
    vols = d.volume_paths()
    disks = {vols[x["volume"]] for x in vm["disks"]}
    net_dir = os.path.join(d.root, "net", "default")
    with open(os.path.join(net_dir, "dnsmasq.pid")) as f:
        dnsmasq = int(f.read().strip())
    assert qemu_alive(dnsmasq)

    listening = listening_socket_inodes(unix_path=d.sock, tcp_port=d.port)
    assert len(listening) >= 2, f"pampad's listening sockets not found in /proc/net: {listening}"
    pampad_table = fd_table(d.proc.pid)
    pampad_inodes = {int(m.group(1)) for t in pampad_table.values() for m in [re.fullmatch(r"\w+:\[(\d+)\]", t)] if m}
    pampad_files = {os.path.join(d.data, n) for n in ("state.db", "state.db-wal", "state.db-shm", "state.db-journal",
                                                      "pampad.lock", "token")}
    pampad_files.add(d.log)

    problems = []
    for name, pid, own_files, own_dirs in (
            ("QEMU", qemu, disks | {vm["kernel"], vm["initrd"]}, [run_dir]),
            ("dnsmasq", dnsmasq, set(), [net_dir])):
        table = fd_table(pid)
        bad = foreign_descriptors(table, own_files, own_dirs, pampad_files, listening, pampad_inodes)
        if bad:
            problems.append(f"{name} (pid {pid}) holds what is not its own:\n" +
                            "\n".join(f"  fd {fd} -> {t}: {why}" for fd, t, why in bad) +
                            f"\nits whole fd table:\n{format_fd_table(table)}")
    assert not problems, "\n\n".join(problems) + f"\n\npampad's fd table:\n{format_fd_table(pampad_table)}"


# --- 2 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,subnet", [(signal.SIGTERM, "10.216.2.0/24"), (signal.SIGINT, "10.216.3.0/24"),
                                        (signal.SIGKILL, "10.216.4.0/24")], ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_pampad_restarts_on_the_same_port_with_vms_running(fresh, sig, subnet):
    port = free_port()
    d = fresh(subnet, port=port)
    assert d.port == port
    d.cli("vm", "create", "keep", "--cpus", "1", "--memory", "128M", *KERNEL)  # a NIC on the default network
    d.cli("vm", "start", "keep")
    pid = d.vm("keep")["pid"]
    d.stop_with(sig)
    assert qemu_alive(pid), "QEMU died with pampad"
    try:
        d.start(timeout=15)
    except RuntimeError as e:
        held = {i: holders_of(f"socket:[{i}]") for i in listening_socket_inodes(unix_path=d.sock, tcp_port=port)}
        pytest.fail(f"pampad did not come back on port {port} within 15 s after {sig.name}; "
                    f"the API's sockets are held by: {held}\n{str(e)[-3000:]}")
    assert d.port == port
    vm = d.vm("keep")
    assert vm["state"] == "running" and vm["pid"] == pid, vm
    st, body = d.api("GET", "/api/v1/vms")
    assert st == 200 and [v["name"] for v in body] == ["keep"], (st, body)
    st, _ = d.api("GET", "/api/v1/vms", token="")
    assert st == 401


# --- 3 -------------------------------------------------------------------------------------------

class SilentServer:
    """Accepts connections on a unix socket and on TCP, reads what comes, never answers;
    with answer_first, the first connection of each socket gets that HTTP body (JSON) once."""

    def __init__(self, root, answer_first=None):
        self.answer_first = answer_first
        self.unix_path = os.path.join(root, "silent.sock")
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(self.unix_path)
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.conns = []
        self.stopping = False
        self.threads = []
        for s in (self.unix, self.tcp):
            s.listen(16)
            s.settimeout(0.2)
            t = threading.Thread(target=self._accept, args=(s,), daemon=True)
            t.start()
            self.threads.append(t)

    def _accept(self, s):
        while not self.stopping:
            try:
                c, _ = s.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.answer_first is not None and not any(c.family == s.family for c in self.conns):
                c.recv(65536)
                body = json.dumps(self.answer_first).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n%s" % (len(body), body))
            self.conns.append(c)  # held open, never answered (again)

    def close(self):
        self.stopping = True
        for t in self.threads:
            t.join()
        for c in self.conns + [self.unix, self.tcp]:
            c.close()


def run_against_silent(server, args, limit):
    """Runs `pampa ARGS` against server over TCP and over the unix socket with PAMPA_TIMEOUT=2;
    yields each way's result and its seconds. Fails when the CLI still waits after limit s."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAMPA_")}
    env["PAMPA_TIMEOUT"] = "2"
    for how in (["--url", f"http://127.0.0.1:{server.port}", "--token", "x"], ["--socket", server.unix_path]):
        t0 = time.time()
        try:
            r = subprocess.run([PAMPA, *how, *args], capture_output=True, text=True, env=env, timeout=limit)
        except subprocess.TimeoutExpired:
            pytest.fail(f"pampa {' '.join(how + args)} still waits after {limit} s with PAMPA_TIMEOUT=2")
        assert r.returncode != 0, r.stdout
        assert "did not answer in 2 s" in r.stderr and "is it running?" in r.stderr, (how, r.stderr)
        yield r, time.time() - t0


def test_cli_times_out_on_a_silent_pampad(tmp_path):
    server = SilentServer(str(tmp_path))
    try:
        for r, took in run_against_silent(server, ["vm", "list"], 10):
            assert 1.5 <= took < 10, took
        assert server.conns, "the CLI never connected"
    finally:
        server.close()


def test_cli_waiting_for_a_task_times_out_when_pampad_falls_silent(tmp_path):
    """pampad answers the request that starts a task, then hangs: the CLI's wait for the task
    (event stream handshake, then polling) ends with the timeout message instead of waiting forever."""
    server = SilentServer(str(tmp_path), answer_first={"task": "t-1"})
    try:
        for r, took in run_against_silent(server, ["vm", "shutdown", "web"], 30):
            assert took < 15, took  # 5 s for the event stream's handshake, 2 s for the poll
    finally:
        server.close()


# --- 4 -------------------------------------------------------------------------------------------

def host_memory():
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
    return info["MemTotal"], info["MemAvailable"]


def sizes_in(text):
    """Every size written like "23.5 GiB" or "24104 MiB" in text, in bytes."""
    mult = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
    return [float(n) * mult[u] for n, u in re.findall(r"(\d+(?:\.\d+)?) ?(KiB|MiB|GiB|TiB)\b", text)]


def names_host_memory(text):
    """True when text gives the host's total or available memory (as pampad may round it)."""
    total, avail = host_memory()
    return any(abs(s - total) <= 0.1 * total or abs(s - avail) <= 0.1 * total for s in sizes_in(text))


def names_one_tib(text):
    return any(s == 1 << 40 for s in sizes_in(text))


def test_start_refused_when_memory_exceeds_the_host(fresh):
    d = fresh("10.216.5.0/24")
    common = ["--cpus", "1", "--memory", "1T", "--net", "none", *KERNEL]
    r = d.cli("vm", "create", "big", *common)
    said = r.stdout + r.stderr
    assert "warning" in said.lower() and names_one_tib(said) and names_host_memory(said), said

    r = d.cli("vm", "start", "big", check=False)
    assert r.returncode != 0, r.stdout
    assert "--force" in r.stderr and names_host_memory(r.stderr), r.stderr
    assert d.vm("big")["state"] == "stopped"

    log_from = os.path.getsize(d.log)
    r = d.cli("vm", "start", "big", "--force", check=False)
    assert r.returncode != 0, r.stdout
    assert "QEMU" in r.stderr, r.stderr  # QEMU's own reason, e.g. "cannot set up guest memory"
    assert d.vm("big")["state"] == "stopped"
    with open(d.log) as f:
        f.seek(log_from)
        log = f.read()
    assert re.search(r"^\S+Z error .*\bbig\b", log, re.M), f"no error-level line about vm big in pampad's log:\n{log}"

    j = json.loads(d.cli("vm", "create", "big2", *common, "--json").stdout)
    assert isinstance(j.get("warnings"), list), j
    assert any(names_one_tib(w) and names_host_memory(w) for w in j["warnings"]), j["warnings"]


# --- 5 -------------------------------------------------------------------------------------------

READERS = {"vm list": "/api/v1/vms", "vm show a": "/api/v1/vms/a", "vm show b": "/api/v1/vms/b",
           "volume list": "/api/v1/pools/default/volumes", "net list": "/api/v1/networks"}


def percentile(samples, p):
    s = sorted(samples)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def time_readers_during(d, task, what):
    """Times every reader, round after round, as long as the task runs. A round starts only while the
    task is running, so a reader that has to wait for the operation shows up as a slow sample."""
    token = d.token
    samples = {name: [] for name in READERS}
    while True:
        st, t = d.api("GET", f"/api/v1/tasks/{task}", token=token)
        assert st == 200, t
        if t["state"] != "running":
            break
        for name, path in READERS.items():
            t0 = time.perf_counter()
            st, body = d.api("GET", path, token=token)
            samples[name].append(time.perf_counter() - t0)
            assert st == 200, (name, st, body)
    assert t["state"] == "succeeded", t
    report = []
    for name, ss in samples.items():
        report.append(f"{what:>16} | {name:<12} n={len(ss):<4} p50={percentile(ss, 50) * 1000:7.1f} ms "
                      f"p99={percentile(ss, 99) * 1000:7.1f} ms max={max(ss) * 1000:7.1f} ms" if ss else
                      f"{what:>16} | {name:<12} n=0")
    print("\n".join(report))
    return samples, report


def test_readers_never_wait_for_long_operations(fresh):
    d = fresh("10.216.6.0/24")
    d.cli("vm", "create", "a", "--cpus", "1", "--memory", "1G", "--net", "none",
          "--disk-image", disk_with_random_tail(d, "a.raw", 768), *KERNEL)
    d.cli("vm", "create", "b", "--cpus", "1", "--memory", "128M", "--net", "none", *KERNEL)
    d.cli("vm", "start", "a")
    d.wait_console("a", "pampa-guest: ready")
    d.cli("repo", "add", "r", "--url", os.path.join(d.root, "repo"), "--no-encryption")
    d.cli("repo", "add", "r2", "--url", os.path.join(d.root, "repo2"), "--no-encryption")
    # Fill the guest's RAM (its page cache) with the disk's random tail: saving 800 MB of RAM takes
    # ~5 s, the backup of the disk ~4 s, the shutdown its 6 s timeout: each long enough for 12 rounds
    # (the restore, the shortest, has given 16 on a busy machine).
    d.exec("a", "dd", "if=/dev/vda", "of=/dev/null", "bs=1M", "skip=1024", "count=768")

    ops = [("snapshot --memory", ["snapshot", "create", "a", "s1", "--memory", "--async"]),
           ("backup", ["backup", "run", "a", "--repo", "r", "--async"]),
           # The guest stops answering the power button: the shutdown waits out its timeout.
           ("shutdown", ["vm", "shutdown", "a", "--timeout", "6", "--async"]),
           # Then the same disk once the VM is stopped: through qemu-nbd (a full read, into a second
           # repository: an incremental of an unchanged disk ends too fast to sample), restored, imported.
           ("backup stopped", ["backup", "run", "a", "--repo", "r2", "--async"]),
           ("restore", None),
           ("image import", ["volume", "import", "default", "imported", d.root + "/a.raw", "--async"])]
    failures, reports = [], []
    last_backup = None
    for what, args in ops:
        if what == "shutdown":
            d.exec("a", "killall", "acpid")
        if what == "restore":
            args = ["backup", "restore", last_backup, "--repo", "r2", "--as", "a2", "--async"]
        task = d.cli(*args).stdout.strip()
        samples, report = time_readers_during(d, task, what)
        if what.startswith("backup"):
            last_backup = d.api("GET", f"/api/v1/tasks/{task}", token=d.token)[1]["result"]["id"]
        reports += report
        for name, ss in samples.items():
            if not ss or percentile(ss, 99) >= 0.050:
                failures.append(f"{what}: {name} p99 {percentile(ss, 99) * 1000:.1f} ms" if ss else
                                f"{what}: {name} no sample")
            elif len(ss) < 12:
                # Fewer rounds: the operation ended too fast to say anything (a p99 of 12 is their maximum).
                failures.append(f"{what}: only {len(ss)} samples of {name} while it ran (need 12)")
    assert d.vm("a")["state"] == "stopped"
    assert not failures, "\n".join(failures) + "\n" + "\n".join(reports)


# --- 6 -------------------------------------------------------------------------------------------

def test_restore_killed_midway_is_finished_or_removed_on_restart(fresh):
    d = fresh("10.216.7.0/24")
    d.cli("vm", "create", "src", "--cpus", "1", "--memory", "128M", "--net", "none",
          "--disk-image", disk_with_random_tail(d, "src.raw", 1024), *KERNEL)
    d.cli("repo", "add", "r", "--url", os.path.join(d.root, "repo"), "--no-encryption")
    b = json.loads(d.cli("backup", "run", "src", "--repo", "r", "--json").stdout)
    pool = d.pool_path()

    task = d.cli("backup", "restore", b["id"], "--repo", "r", "--as", "x1", "--async").stdout.strip()
    # Killed as soon as it has written something (a fixed second was the whole restore on a fast day).
    deadline = time.time() + 5
    while time.time() < deadline:
        t = d.cli_json("task", "show", task)
        if t["state"] != "running" or t.get("progress", 0) > 0:
            break
        time.sleep(0.02)
    assert d.cli_json("task", "show", task)["state"] == "running", "the restore ended before the kill: make it longer"
    d.kill9()
    d.start()
    t = d.cli_json("task", "show", task)
    assert t["state"] in ("failed", "interrupted") and "interrupted" in t["state"] + t["error"], t
    assert "x1" not in [v["name"] for v in d.vms()]
    assert not [v for v in d.volume_paths() if v.startswith("x1-")], d.volume_paths()
    left = [f for f in os.listdir(pool) if f.startswith("x1-") or f.endswith((".creating", ".importing"))]
    assert not left, f"left in the pool directory {pool}: {left}"

    d.cli("backup", "restore", b["id"], "--repo", "r", "--as", "x1")
    vols = d.volume_paths()
    r = subprocess.run(["qemu-img", "compare", "-q", vols["src-disk0"], vols["x1-disk0"]])
    assert r.returncode == 0, "the restored disk differs from the original"


# --- 7 -------------------------------------------------------------------------------------------

def big_raw(d, name, mib):
    """A raw image of non-zero bytes: qemu-img must write every cluster of it."""
    path = os.path.join(d.root, name)
    block = (b"pampa-cancel-" * (MiB // 13 + 1))[:MiB]
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
    return path


def wait_running_task(d, type_, target, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for t in d.cli_json("task", "list"):
            if t["type"] == type_ and t["target"] == target and t["state"] == "running":
                return t["id"]
        time.sleep(0.1)
    raise AssertionError(f"no running {type_} task for {target}")


def test_a_cancelled_task_is_cancelled_not_invalid(fresh):
    d = fresh("10.216.8.0/24")
    src = big_raw(d, "big.raw", 2048)
    pool = d.pool_path()

    task = d.cli("volume", "import", "default", "cancelme", src, "--async").stdout.strip()
    time.sleep(0.5)
    assert d.cli_json("task", "show", task)["state"] == "running", "the import ended before the cancel"
    assert d.cli("task", "cancel", task).stdout.strip() == f"cancelling {task}"
    t = d.wait_task(task, timeout=30)
    assert t["state"] == "cancelled", t
    assert "cancel" in t["error"].lower(), t
    for key in ("code", "status", "http_status"):
        assert t.get(key) not in ("invalid", 400), t
    assert "cancelme" not in d.volume_paths()
    assert not [f for f in os.listdir(pool) if f.startswith("cancelme")], os.listdir(pool)

    # The CLI that waits for the task says it was cancelled, not that the request was invalid.
    p = subprocess.Popen([PAMPA, "--socket", d.sock, "volume", "import", "default", "cancel2", src],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        d.cli("task", "cancel", wait_running_task(d, "import", "default/cancel2"))
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0, out
    assert "cancelled" in err and "invalid" not in err.lower(), err

    # A cancelled backup leaves no backup behind, and the repository checks out.
    d.cli("vm", "create", "c", "--cpus", "1", "--memory", "128M", "--net", "none",
          "--disk-image", disk_with_random_tail(d, "c.raw", 1024), *KERNEL)
    d.cli("repo", "add", "r", "--url", os.path.join(d.root, "repo"), "--no-encryption")
    task = d.cli("backup", "run", "c", "--repo", "r", "--async").stdout.strip()
    time.sleep(0.5)
    assert d.cli_json("task", "show", task)["state"] == "running", "the backup ended before the cancel"
    d.cli("task", "cancel", task)
    t = d.wait_task(task, timeout=30)
    assert t["state"] == "cancelled" and "cancel" in t["error"].lower(), t
    for key in ("code", "status", "http_status"):
        assert t.get(key) not in ("invalid", 400), t
    assert d.cli_json("backup", "list", "--repo", "r") == []
    assert d.cli("backup", "verify", "--repo", "r").returncode == 0
