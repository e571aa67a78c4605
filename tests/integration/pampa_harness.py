"""Starts a real pampad and drives it through the real pampa CLI and its API."""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

BUILD = os.environ.get("PAMPA_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
GUEST = os.environ.get("PAMPA_GUEST", os.path.join(BUILD, "guest"))
PAMPAD = os.path.join(BUILD, "pampad")
PAMPA = os.path.join(BUILD, "pampa")
APPEND = "console=ttyS0 quiet"



def disk_with_random_tail(d, name, tail_mib):
    """The guest's data disk as a raw image grown by tail_mib MiB of random bytes past its filesystem:
    the guest boots and mounts it as always, and a backup or restore has that much real data to move
    (data that neither compresses nor deduplicates)."""
    raw = os.path.join(d.root, name)
    subprocess.run(["qemu-img", "convert", "-O", "raw", os.path.join(GUEST, "disk.qcow2"), raw], check=True)
    with open(raw, "r+b") as f:
        f.seek(0, os.SEEK_END)
        for _ in range(tail_mib):
            f.write(os.urandom(1 << 20))
    return raw

def define_vms(addr, port, token, names, context=None, **fields):
    """Defines stopped VMs with no disks and no network through the API, over one kept-alive connection
    (for benchmarks of long lists); `fields` are added to each create request (e.g. host=NAME). With an
    ssl context: over HTTPS."""
    conn = (http.client.HTTPSConnection(addr, port, timeout=60, context=context) if context
            else http.client.HTTPConnection(addr, port, timeout=60))
    try:
        for name in names:
            body = json.dumps({"name": name, "cpus": 1, "memory": "64M", "networks": [], **fields})
            conn.request("POST", "/api/v1/vms", body, {"Authorization": "Bearer " + token,
                                                      "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 202, (name, r.status)
    finally:
        conn.close()


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Pampad:
    def __init__(self, subnet="10.213.0.0/24", port=0, extra_args=()):
        # Short paths: unix socket paths are limited to 108 bytes.
        self.root = tempfile.mkdtemp(prefix="pit-", dir="/tmp")
        self.data = os.path.join(self.root, "data")
        self.sock = os.path.join(self.root, "pampa.sock")
        self.log = os.path.join(self.root, "pampad.log")
        self.subnet = subnet
        self.listen_port = port  # the API's TCP port on every start; 0: pampad picks one each time
        self.extra_args = list(extra_args)  # more pampad options, on every start
        self.proc = None
        self.port = None

    # --- process control -------------------------------------------------
    def start(self, timeout=15):
        env = dict(os.environ, PAMPA_ACCEL="tcg")
        logf = open(self.log, "a")
        self.proc = subprocess.Popen(
            [PAMPAD, "--data-dir", self.data, "--socket", self.sock, "--listen", f"127.0.0.1:{self.listen_port}",
             "--allow-path", GUEST, "--allow-path", self.root, "--default-subnet", self.subnet,
             "--appliance", GUEST, *self.extra_args],
            stdout=logf, stderr=logf, env=env, start_new_session=True)
        deadline = time.time() + timeout
        start_at = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        while time.time() < deadline:
            with open(self.log) as f:
                text = f.read()
            m = re.findall(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m and "ready:" in text[start_at:] and self.proc.poll() is None:
                self.port = int(m[-1])
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("pampad exited:\n" + text)
            time.sleep(0.1)
        raise RuntimeError("pampad did not become ready:\n" + open(self.log).read())

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)

    def teardown(self):
        """Stops and deletes every VM and network this instance made, then pampad."""
        if self.proc and self.proc.poll() is None:
            for vm in self.vms():
                if vm["state"] not in ("stopped",):
                    self.cli("vm", "stop", vm["name"], check=False)
                self.cli("vm", "delete", vm["name"], check=False)
            for net in self.cli_json("net", "list"):
                self.cli("net", "delete", net["name"], check=False)
        self.stop()
        for pid in self.leftover_pids():  # e.g. the export server of a live restore cut short
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def stop_with(self, sig):
        """Stops pampad with this signal (SIGTERM, SIGINT, SIGKILL) and waits for it to exit."""
        self.proc.send_signal(sig)
        self.proc.wait(timeout=20)

    def destroy(self):
        """Ends everything this instance started, also after a kill -9 or a test that failed half way:
        restarts a pampad that is down so it stops its VMs and deletes its networks, then kills by pid
        whatever still runs from this instance's directory (QEMU, qemu-nbd, qemu-img, dnsmasq) and
        deletes the bridges (and their taps) of its NAT networks."""
        bridges = self.nat_bridges()
        if self.proc is not None and self.proc.poll() is not None:
            try:
                self.start()
            except Exception:  # noqa: BLE001 - whatever it left is killed below
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                for vm in self.vms():
                    if vm["state"] != "stopped":
                        self.cli("vm", "stop", vm["name"], check=False, timeout=60)
                    self.cli("vm", "delete", vm["name"], check=False, timeout=60)
                for net in self.cli_json("net", "list"):
                    self.cli("net", "delete", net["name"], check=False, timeout=60)
            except Exception:  # noqa: BLE001 - pampad does not answer: kill below
                pass
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                self.kill9()
        for pid in self.leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while self.leftover_pids() and time.time() < deadline:
            time.sleep(0.1)
        for br in bridges:
            if not os.path.exists(f"/sys/class/net/{br}"):
                continue
            for tap in os.listdir(f"/sys/class/net/{br}/brif") if os.path.isdir(f"/sys/class/net/{br}/brif") else []:
                subprocess.run(["ip", "link", "del", tap], capture_output=True)
            subprocess.run(["ip", "link", "del", br], capture_output=True)
            subprocess.run(["nft", "delete", "table", "ip", "pampa_" + br], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def nat_bridges(self):
        """The bridges of this instance's NAT networks, read from its state file (works with pampad down)."""
        db = os.path.join(self.data, "state.db")
        if not os.path.exists(db):
            return []
        r = subprocess.run(["sqlite3", "-cmd", ".timeout 3000", db, "SELECT value FROM kv WHERE key LIKE 'networks/%'"],
                           capture_output=True, text=True)
        out = []
        for line in r.stdout.splitlines():
            try:
                n = json.loads(line)
            except ValueError:
                continue
            if n.get("mode", "nat") == "nat" and n.get("bridge"):
                out.append(n["bridge"])
        return out

    def leftover_pids(self):
        """Live processes whose command line names this instance's directory (pampad, QEMU, dnsmasq, ...)."""
        return [pid for pid, cmd in processes() if self.root + "/" in " ".join(cmd)]

    def add_passphrase_repo(self, name, passphrase):
        """Adds an encrypted repository in a directory of its own under root (its passphrase in a
        file beside it); returns the repository's directory."""
        pass_file = os.path.join(self.root, name + "-passphrase")
        with open(pass_file, "w") as f:
            f.write(passphrase + "\n")
        os.chmod(pass_file, 0o600)
        repo_dir = os.path.join(self.root, "repo-" + name)
        self.cli("repo", "add", name, "--url", repo_dir, "--passphrase-file", pass_file)
        return repo_dir

    def wait_task(self, task, timeout=120):
        """Waits until the task leaves "running"; returns its final JSON (whatever its state)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            t = self.cli_json("task", "show", task)
            if t["state"] != "running":
                return t
            time.sleep(0.2)
        raise AssertionError(f"task {task} still running after {timeout}s: {self.cli_json('task', 'show', task)}")

    def volume_paths(self, pool="default"):
        return {v["name"]: v["path"] for v in self.cli_json("volume", "list", pool)}

    def pool_path(self, pool="default"):
        return [p for p in self.cli_json("pool", "list") if p["name"] == pool][0]["path"]

    @property
    def token(self):
        with open(os.path.join(self.data, "token")) as f:
            return f.read().strip()

    # --- CLI -------------------------------------------------------------
    def cli(self, *args, check=True, timeout=180, input=None):
        r = subprocess.run([PAMPA, "--socket", self.sock, *args], capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"pampa {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r

    def cli_json(self, *args):
        return json.loads(self.cli(*args, "--json").stdout)

    def vms(self):
        return self.cli_json("vm", "list")

    def vm(self, name):
        return self.cli_json("vm", "show", name)

    # --- REST over TCP ---------------------------------------------------
    def api(self, method, path, body=None, token=None, raw_body=None):
        data = raw_body if raw_body is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        if token is None:
            token = self.token
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    # --- waiting ---------------------------------------------------------
    def wait_state(self, name, state, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            vm = self.vm(name)
            if vm["state"] == state:
                return vm
            time.sleep(0.25)
        raise AssertionError(f"vm {name} is {self.vm(name)['state']}, not {state}, after {timeout}s")

    def console(self, name):
        return self.cli("vm", "console", name, "--dump").stdout

    def wait_console(self, name, text, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if text in self.console(name):
                return
            time.sleep(0.5)
        raise AssertionError(f"vm {name} never printed {text!r}; console:\n{self.console(name)[-2000:]}")

    def create_guest(self, name, *extra):
        self.cli("vm", "create", name, "--cpus", "1", "--memory", "256M",
                 "--disk-image", os.path.join(GUEST, "disk.qcow2"),
                 "--kernel", os.path.join(GUEST, "vmlinuz"), "--initrd", os.path.join(GUEST, "initrd.img"),
                 "--append", APPEND, *extra)

    def exec(self, name, *argv, check=True):
        return self.cli("vm", "exec", name, "--", *argv, check=check)


def fd_table(pid):
    """{fd: what it points at} for a process, as /proc/PID/fd shows it."""
    out = {}
    base = f"/proc/{pid}/fd"
    for fd in sorted(os.listdir(base), key=int):
        try:
            out[int(fd)] = os.readlink(os.path.join(base, fd))
        except OSError:  # closed while we looked
            pass
    return out


def format_fd_table(table):
    return "\n".join(f"  {fd:>4} -> {target}" for fd, target in sorted(table.items()))


def listening_socket_inodes(unix_path=None, tcp_port=None):
    """Inodes of the listening sockets bound to this unix path or this TCP port (any address)."""
    inodes = set()
    if unix_path:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                cols = line.split()
                # Num RefCount Protocol Flags Type St Inode [Path]; flag 0x10000 is __SO_ACCEPTCON (listening)
                if len(cols) >= 8 and cols[7] == unix_path and int(cols[3], 16) & 0x10000:
                    inodes.add(int(cols[6]))
    if tcp_port:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            if not os.path.exists(table):
                continue
            with open(table) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    # sl local_address rem_address st ... inode (column 9); st 0A is LISTEN
                    if int(cols[1].rsplit(":", 1)[1], 16) == tcp_port and cols[3] == "0A":
                        inodes.add(int(cols[9]))
    return inodes


def holders_of(target):
    """Pids (with their command names) that hold a descriptor pointing at target, e.g. "socket:[123]"."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            links = [os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")]
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if target in links:
            out.append(f"{entry} ({comm})")
    return out


def processes():
    """(pid, argv as strings) of every live process but this one."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and qemu_alive(int(entry)):
            yield int(entry), argv


def qemu_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class WebSocket:
    """A minimal RFC 6455 client over pampad's unix socket, or TCP when `where`
    is an (address, port) pair (enough for tests)."""

    def __init__(self, where, path):
        self.s = socket.socket(socket.AF_INET if isinstance(where, tuple) else socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(where)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(1)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        self.status = int(head.split(b" ")[1])
        self.buf = b""

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        b0, b1 = self._read(2)
        length = b1 & 0x7F
        if length == 126:
            length = struct.unpack(">H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self._read(8))[0]
        payload = self._read(length)
        if b0 & 0x0F == 8:
            raise ConnectionError("server closed")
        return payload

    def send(self, data, opcode=2):
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        n = len(data)
        header += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
        self.s.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def close(self):
        self.s.close()


class Sshd:
    """A real OpenSSH server on loopback, with fresh host and client keys."""

    def __init__(self, root, path=None):
        """path: the PATH its sessions get (SetEnv), to play a server without some program."""
        self.dir = tempfile.mkdtemp(prefix="sshd-", dir=root)  # one per server: tests may start several
        os.makedirs("/run/sshd", exist_ok=True)
        for key in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(self.dir, key)],
                           check=True)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        shutil.copy(os.path.join(self.dir, "client.pub"), os.path.join(self.dir, "authorized_keys"))
        with open(os.path.join(self.dir, "host.pub")) as f:
            host_pub = f.read()
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_pub}")
        self.key = os.path.join(self.dir, "client")
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.dir}/host\n"
                    f"AuthorizedKeysFile {self.dir}/authorized_keys\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    f"Subsystem sftp internal-sftp\nPidFile {self.dir}/sshd.pid\n")
            if path:
                f.write(f"SetEnv PATH={path}\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", conf],
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start")

    def signal_all(self, sig):
        """Signals sshd and every per-connection child it forked."""
        subprocess.run(["pkill", f"-{sig}", "-P", str(self.proc.pid)])
        self.proc.send_signal(getattr(signal, "SIG" + sig))

    def stop(self):
        self.signal_all("CONT")
        subprocess.run(["pkill", "-TERM", "-P", str(self.proc.pid)])
        self.proc.terminate()
        self.proc.wait(timeout=10)
