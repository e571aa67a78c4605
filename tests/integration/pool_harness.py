"""A pool of hosts on one machine: each host a network namespace with its own address on a bridge,
its own pampad (data directory, unix socket, API on its address), one real etcd beside them in the
root namespace, and a shared pool in one common directory. The HA tests build on it.

    pool = Pool(hosts=3).start()
    h1, h2, h3 = pool.hosts
    h1.cli("vm", "list")            # the CLI over h1's unix socket
    pool.cut(h2) / pool.heal(h2)    # take h2's link down and up
    pool.teardown()
"""
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from pampa_harness import GUEST, PAMPAD, Pampad


def sh(*argv, check=True):
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


class PoolHost(Pampad):
    """A pampad in its own network namespace, one host of a pool."""

    def __init__(self, pool, index):
        super().__init__()
        self.pool = pool
        self.name = f"h{index}"
        self.netns = f"{pool.tag}n{index}"
        self.veth = f"{pool.tag}v{index}"
        self.addr = f"{pool.net}.{10 + index}"
        self.listen_port = 8006

    def start(self, timeout=20):
        env = dict(os.environ, PAMPA_ACCEL="tcg")
        logf = open(self.log, "a")
        start_at = os.path.getsize(self.log)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, PAMPAD, "--data-dir", self.data, "--socket", self.sock,
             "--listen", f"{self.addr}:{self.listen_port}", "--cluster", f"etcd://{self.pool.etcd_endpoint}",
             "--host", self.name, "--allow-path", GUEST, "--allow-path", self.pool.root,
             "--default-subnet", "10.213.0.0/24", "--appliance", GUEST],
            stdout=logf, stderr=logf, env=env, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.log) as f:
                text = f.read()
            if "ready:" in text[start_at:] and self.proc.poll() is None:
                self.port = self.listen_port
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"pampad on {self.name} exited:\n" + text[start_at:])
            time.sleep(0.1)
        raise RuntimeError(f"pampad on {self.name} did not become ready:\n" + open(self.log).read()[start_at:])

    def api_url(self, path):
        return f"http://{self.addr}:{self.port}{path}"

    def qemu_pids(self, uuid):
        """QEMU processes of the VM with this uuid started by this host's pampad (its run directory)."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"qemu-system-x86_64") and \
                    uuid.encode() in argv and any(a.startswith(self.root.encode()) for a in argv):
                out.append(int(pid))
        return out

    def kill_everything(self):
        """Kills every process in this host's namespace (pampad, QEMU, dnsmasq)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        r = sh("ip", "netns", "pids", self.netns, check=False)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


class Pool:
    def __init__(self, hosts=3):
        self.tag = "p" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        self.net = f"10.77.{random.randint(10, 250)}"
        self.root = tempfile.mkdtemp(prefix="pool-", dir="/tmp")
        self.bridge = f"{self.tag}br"
        self.shared = os.path.join(self.root, "shared")
        self.hosts = [PoolHost(self, i + 1) for i in range(hosts)]
        self.etcd = None
        self.etcd_endpoint = None

    def start(self):
        os.makedirs(self.shared)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.net}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for h in self.hosts:
            sh("ip", "netns", "add", h.netns)
            sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
            sh("ip", "link", "set", h.veth, "master", self.bridge, "up")
            sh("ip", "-n", h.netns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
            sh("ip", "-n", h.netns, "link", "set", "eth0", "up")
            sh("ip", "-n", h.netns, "link", "set", "lo", "up")
        self.start_etcd()
        for h in self.hosts:
            h.start()
        return self

    def start_etcd(self):
        def port():
            s = socket.socket()
            s.bind((f"{self.net}.1", 0))
            p = s.getsockname()[1]
            s.close()
            return p
        client, peer = f"{self.net}.1:{port()}", f"127.0.0.1:{port_loopback()}"
        log = open(os.path.join(self.root, "etcd.log"), "a")
        self.etcd = subprocess.Popen(
            ["etcd", "--name", "pool", "--data-dir", os.path.join(self.root, "etcd"),
             "--listen-client-urls", f"http://{client}", "--advertise-client-urls", f"http://{client}",
             "--listen-peer-urls", f"http://{peer}", "--initial-advertise-peer-urls", f"http://{peer}",
             "--initial-cluster", f"pool=http://{peer}", "--logger", "zap", "--log-level", "error"],
            stdout=log, stderr=log, start_new_session=True)
        self.etcd_endpoint = client
        host, p = client.split(":")
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection((host, int(p)), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("etcd did not start:\n" + open(os.path.join(self.root, "etcd.log")).read())

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)

    def cut(self, h):
        """Takes h's link down: it no longer reaches etcd nor the other hosts."""
        sh("ip", "link", "set", h.veth, "down")

    def heal(self, h):
        sh("ip", "link", "set", h.veth, "up")

    def teardown(self):
        for h in self.hosts:
            h.kill_everything()
        if self.etcd and self.etcd.poll() is None:
            self.etcd.kill()
            self.etcd.wait()
        for h in self.hosts:
            sh("ip", "netns", "del", h.netns, check=False)
            sh("ip", "link", "del", h.veth, check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        for h in self.hosts:
            shutil.rmtree(h.root, ignore_errors=True)


def port_loopback():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
