"""A pool of hosts on one machine: each host a network namespace with its own address on a bridge,
its own pampad (data directory, unix socket, API on its address), one real etcd beside them in the
root namespace, and a shared pool in one common directory. The HA tests build on it.

With tls=True the pool runs as a real one would: h1 forms it (`pampad form-pool`: the pool CA, its
certificate, etcd's), etcd speaks TLS and wants a client certificate from the pool CA, and every other
host joins it (`pampa host join-token` on h1, `pampa host join` in the new host's namespace) before
its pampad starts. tls=False (the default, as the bench uses it) is the plain pool: HTTP, plain etcd.

    pool = Pool(hosts=3, tls=True).start()
    h1, h2, h3 = pool.hosts
    h1.cli("vm", "list")            # the CLI over h1's unix socket
    pool.cut(h2) / pool.heal(h2)    # take h2's link down and up
    pool.teardown()
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

from pampa_harness import GUEST, PAMPA, PAMPAD, Pampad


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


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
        return f"{'https' if self.pool.tls else 'http'}://{self.addr}:{self.port}{path}"

    def tls_file(self, name):
        """A file of this host's DATA_DIR/tls (ca.pem, host.pem, host-key.pem, qemu/...)."""
        return os.path.join(self.data, "tls", name)

    def api(self, method, path, body=None, token=None, cert=True, headers=None):
        """One request to this host's API over TCP from the root namespace: (status, JSON or text).
        In a TLS pool it trusts the pool CA and presents, as client certificate, this host's pool
        certificate (cert=True), none (cert=False), or another PoolHost's (cert=that host)."""
        if self.pool.tls:
            ctx = ssl.create_default_context(cafile=self.tls_file("ca.pem"))
            if cert:
                who = self if cert is True else cert
                ctx.load_cert_chain(who.tls_file("host.pem"), who.tls_file("host-key.pem"))
            conn = http.client.HTTPSConnection(self.addr, self.port, context=ctx, timeout=60)
        else:
            conn = http.client.HTTPConnection(self.addr, self.port, timeout=60)
        head = dict(headers or {})
        token = self.token if token is None else token
        if token:
            head["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            head["Content-Type"] = "application/json"
        try:
            conn.request(method, path, data, head)
            r = conn.getresponse()
            raw = r.read()
        finally:
            conn.close()
        try:
            return r.status, json.loads(raw or b"{}")
        except ValueError:
            return r.status, raw.decode(errors="replace")

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
    def __init__(self, hosts=3, tls=False):
        self.tls = tls
        self.tag = "p" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3))
        self.net = f"10.77.{random.randint(10, 250)}"
        self.root = tempfile.mkdtemp(prefix="pool-", dir="/tmp")
        self.bridge = f"{self.tag}br"
        self.shared = os.path.join(self.root, "shared")
        self.hosts = [PoolHost(self, i + 1) for i in range(hosts)]
        self.etcd = None
        self.etcd_endpoint = None

    def start(self):
        """Brings the pool up; a failure on the way tears down what had started (etcd, the pampads,
        the namespaces and links) before it is raised."""
        try:
            self.bring_up()
        except BaseException:
            self.teardown()
            raise
        return self

    def bring_up(self):
        os.makedirs(self.shared)
        # An address of its own: a bridge without one takes its lowest port's, and a host that left
        # (unplumb) moved it under the others, cut off from etcd for seconds until ARP found it again.
        sh("ip", "link", "add", self.bridge, "address", "02:00:00:00:00:01", "type", "bridge")
        sh("ip", "addr", "add", f"{self.net}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for h in self.hosts:
            self.plumb(h)
        h1 = self.hosts[0]
        if self.tls:
            sh(PAMPAD, "--data-dir", h1.data, "--host", h1.name, "form-pool", "--address", h1.addr,
               "--etcd-address", f"{self.net}.1", "--etcd-address", "127.0.0.1")
        self.start_etcd()
        h1.start()
        for h in self.hosts[1:]:
            if self.tls:
                self.join(h)
            h.start()

    def join(self, h):
        """h joins the pool as a new host does: a token made on h1, `pampa host join` in h's namespace."""
        h1 = self.hosts[0]
        t = h1.cli_json("host", "join-token")
        sh("ip", "netns", "exec", h.netns, PAMPA, "host", "join", "--url", f"https://{h1.addr}:{h1.listen_port}",
           "--token", t["token"], "--ca-sha256", t["ca_sha256"], "--name", h.name, "--address", h.addr,
           "--data-dir", h.data, "--json")

    def plumb(self, h):
        """h's namespace, with its address on the bridge."""
        sh("ip", "netns", "add", h.netns)
        sh("ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
        sh("ip", "link", "set", h.veth, "master", self.bridge, "up")
        sh("ip", "-n", h.netns, "addr", "add", f"{h.addr}/24", "dev", "eth0")
        sh("ip", "-n", h.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", h.netns, "link", "set", "lo", "up")

    def unplumb(self, h):
        sh("ip", "netns", "del", h.netns, check=False)
        sh("ip", "link", "del", h.veth, check=False)

    def start_etcd(self):
        def port():
            s = socket.socket()
            s.bind((f"{self.net}.1", 0))
            p = s.getsockname()[1]
            s.close()
            return p
        client, peer = f"{self.net}.1:{port()}", f"127.0.0.1:{port_loopback()}"
        scheme, tls = "http", []
        if self.tls:  # the certificate h1 made when it formed the pool; clients need one from the pool CA
            h1 = self.hosts[0]
            scheme = "https"
            tls = ["--cert-file", h1.tls_file("etcd/server.pem"), "--key-file", h1.tls_file("etcd/server-key.pem"),
                   "--client-cert-auth", "--trusted-ca-file", h1.tls_file("ca.pem")]
        self.etcd_argv = [
            "etcd", "--name", "pool", "--data-dir", os.path.join(self.root, "etcd"),
            "--listen-client-urls", f"{scheme}://{client}", "--advertise-client-urls", f"{scheme}://{client}",
            "--listen-peer-urls", f"http://{peer}", "--initial-advertise-peer-urls", f"http://{peer}",
            "--initial-cluster", f"pool=http://{peer}", "--logger", "zap", "--log-level", "error", *tls]
        self.etcd_endpoint = client
        self.run_etcd()

    def restart_etcd(self):
        """etcd killed and started again on its data (an upgrade, a crash): returns the seconds it was away."""
        t0 = time.time()
        self.etcd.kill()
        self.etcd.wait()
        self.run_etcd()
        return time.time() - t0

    def run_etcd(self):
        log = open(os.path.join(self.root, "etcd.log"), "a")
        self.etcd = subprocess.Popen(self.etcd_argv, stdout=log, stderr=log, start_new_session=True)
        host, p = self.etcd_endpoint.split(":")
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
            self.unplumb(h)
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
