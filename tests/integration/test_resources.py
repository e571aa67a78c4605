"""Resources for consolidation with real guests: CPU weight, cap and pin
(cgroups, sched_setaffinity), the balloon controller, disk limits (QEMU's
throttling) and NIC limits (tc), metrics with history, and /metrics."""
import fcntl
import json
import os
import re
import socket
import struct
import subprocess
import termios
import threading
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pampa_harness import Pampad

BUSY = "while :; do :; done </dev/null >/dev/null 2>&1 & echo $! >> /tmp/busy"


@pytest.fixture(scope="module")
def host():
    # A reserve larger than any host: the balloon controller acts as on a host short of memory.
    d = Pampad(subnet="10.219.0.0/24", extra_args=["--memory-reserve", "1T"]).start()
    try:
        yield d
    finally:
        d.teardown()


@pytest.fixture(scope="module")
def pair(host):
    """Two running single-vCPU guests."""
    for name in ("ra", "rb"):
        host.create_guest(name)
        host.cli("vm", "start", name)
    for name in ("ra", "rb"):
        host.wait_console(name, "pampa-guest: ready")
    return host


def cpu_seconds(pid):
    """User + system CPU time of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pids, seconds):
    before = [cpu_seconds(p) for p in pids]
    time.sleep(seconds)
    return [cpu_seconds(p) - b for p, b in zip(pids, before)]


def vcpu_threads(pid, all_threads=False):
    """{tid: Cpus_allowed_list} of a QEMU's vCPU threads (named "CPU n/TCG" or "CPU n/KVM"), or of all."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if not f.read().startswith("CPU ") and not all_threads:
                continue
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            threads[int(tid)] = re.search(r"Cpus_allowed_list:\s*(\S+)", f.read()).group(1)
    return threads


def stop_busy(d, name):
    d.exec(name, "sh", "-c", "kill $(cat /tmp/busy) 2>/dev/null; rm -f /tmp/busy", check=False)


def test_cpu_weights_share_one_core_1_to_3(pair):
    d = pair
    pids = [d.vm(n)["pid"] for n in ("ra", "rb")]
    d.cli("vm", "edit", "ra", "--cpu-weight", "100", "--cpu-pin", "0")
    d.cli("vm", "edit", "rb", "--cpu-weight", "300", "--cpu-pin", "0")
    for pid in pids:  # applied to the running VMs: every thread (vCPUs, I/O, main loop) on core 0
        assert vcpu_threads(pid) and set(vcpu_threads(pid, all_threads=True).values()) == {"0"}
    for name in ("ra", "rb"):
        d.exec(name, "sh", "-c", BUSY)
    try:
        time.sleep(2)
        a, b = cpu_over(pids, 12)
        assert 2.5 <= b / a <= 3.5, f"weights 100:300 gave CPU time {a:.2f}s : {b:.2f}s (1:{b / a:.2f})"
        # A weight change applies at once.
        d.cli("vm", "edit", "rb", "--cpu-weight", "100")
        time.sleep(1)
        a, b = cpu_over(pids, 8)
        assert 0.7 <= b / a <= 1.4, f"equal weights gave {a:.2f}s : {b:.2f}s"
    finally:
        for name in ("ra", "rb"):
            stop_busy(d, name)
    shown = d.vm("rb")
    assert shown["cpu_weight"] == 100 and shown["cpu_pin"] == "0"


def test_pin_changes_live_and_is_kept_across_restart(pair):
    d = pair
    cpus = os.cpu_count()
    d.cli("vm", "edit", "ra", "--cpu-pin", str(cpus - 1))
    assert set(vcpu_threads(d.vm("ra")["pid"]).values()) == {str(cpus - 1)}
    d.cli("vm", "edit", "ra", "--cpu-pin", "none")
    assert set(vcpu_threads(d.vm("ra")["pid"]).values()) == {f"0-{cpus - 1}" if cpus > 1 else "0"}
    d.cli("vm", "edit", "ra", "--cpu-pin", "0")
    d.cli("vm", "stop", "ra")
    d.cli("vm", "start", "ra")
    d.wait_console("ra", "pampa-guest: ready")
    assert set(vcpu_threads(d.vm("ra")["pid"]).values()) == {"0"}
    assert "0" in d.cli("vm", "show", "ra").stdout


def test_cap_of_50_percent_holds(pair):
    d = pair
    d.cli("vm", "edit", "rb", "--cpu-pin", "none", "--cpu-cap", "50")
    pid = d.vm("rb")["pid"]
    d.exec("rb", "sh", "-c", BUSY)
    try:
        time.sleep(2)
        (used,) = cpu_over([pid], 10)
        assert 0.40 <= used / 10 <= 0.58, f"a cap of 50% gave {100 * used / 10:.0f}% of a core"
        d.cli("vm", "edit", "rb", "--cpu-cap", "0")
        time.sleep(1)
        (used,) = cpu_over([pid], 5)
        assert used / 5 > 0.75, f"without a cap the busy guest had only {100 * used / 5:.0f}% of a core"
    finally:
        stop_busy(d, "rb")


def test_bad_resource_values_are_refused_with_what_to_do(pair):
    d = pair
    before = d.vm("ra")
    for args, words in [(["--cpu-weight", "0"], "10000"), (["--cpu-cap", "150"], "at most 100%"),
                        (["--cpu-pin", "0-999"], "has no CPU"), (["--memory-min", "1G"], "minimum"),
                        (["--disk-iops", "5", "--disk", "7"], "no disk 7"), (["--net-bps", "1"], "")]:
        r = d.cli("vm", "edit", "ra", *args, check=False)
        assert r.returncode != 0, args
        assert words in r.stderr, (args, r.stderr)
    assert d.vm("ra") == before  # nothing half applied


def test_disk_limits_hold_in_the_guest(pair):
    d = pair
    d.cli("vm", "edit", "rb", "--disk-bps", "2M")

    def timed_read(skip_mib, mib):
        t = time.time()
        d.exec("rb", "dd", "if=/dev/vda", "of=/dev/null", "bs=64k", f"count={16 * mib}", f"skip={16 * skip_mib}",
               "iflag=direct")
        return time.time() - t

    took = timed_read(0, 8)  # 8 MiB at 2 MiB/s
    assert 3.0 <= took <= 6.5, f"8 MiB under a 2 MiB/s limit took {took:.1f}s"
    d.cli("vm", "edit", "rb", "--disk-bps", "0", "--disk-iops", "50")
    t = time.time()
    d.exec("rb", "dd", "if=/dev/vda", "of=/dev/null", "bs=4k", "count=200", "skip=5000", "iflag=direct")
    took = time.time() - t
    assert 3.0 <= took <= 6.5, f"200 reads under a 50 IOPS limit took {took:.1f}s"
    d.cli("vm", "edit", "rb", "--disk-iops", "0")
    assert timed_read(16, 8) < 2.5
    disk = d.vm("rb")["disks"][0]
    assert not disk.get("iops") and not disk.get("bps")


def tc_tbf_rate(dev):
    """The byte rate of the tbf qdisc on dev, or None."""
    out = subprocess.run(["tc", "-j", "qdisc", "show", "dev", dev], capture_output=True, text=True).stdout
    for q in json.loads(out or "[]"):
        if q.get("kind") == "tbf":
            return q["options"]["rate"]
    return None


def test_nic_limit_is_tc_on_the_tap_both_ways(pair):
    d = pair
    d.cli("vm", "edit", "ra", "--net-bps", "1M")
    uuid = d.vm("ra")["uuid"]
    tap, ifb = "pt" + uuid[:8] + "0", "pi" + uuid[:8] + "0"  # the NIC's tap and the ifb taking its ingress
    assert tc_tbf_rate(tap) == 1 << 20
    assert tc_tbf_rate(ifb) == 1 << 20
    ingress = subprocess.run(["tc", "filter", "show", "dev", tap, "parent", "ffff:"], capture_output=True,
                             text=True).stdout
    assert "mirred" in ingress and ifb in ingress, ingress
    d.cli("vm", "edit", "ra", "--net-bps", "0")
    assert tc_tbf_rate(tap) is None
    assert not os.path.exists(f"/sys/class/net/{ifb}")
    assert d.exec("ra", "true").returncode == 0


def test_nic_limit_holds_both_ways_in_the_guest(pair):
    """4 MiB through a 1 MiB/s limit, guest to host (the tap's ingress, shaped on its ifb) and host to
    guest (the tap's egress), timed at the host between the first and the last byte."""
    d = pair
    d.cli("vm", "edit", "ra", "--net-bps", "1M")
    gateway = re.search(r"default via (\S+)", d.exec("ra", "ip", "route").stdout).group(1)
    size = 4 << 20

    def unacknowledged(conn):
        """Bytes this TCP socket sent that the peer has not acknowledged yet (SIOCOUTQ)."""
        return struct.unpack("i", fcntl.ioctl(conn.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]

    def transfer(send):
        srv = socket.socket()
        srv.bind((gateway, 0))
        srv.listen(1)
        srv.settimeout(60)
        port = srv.getsockname()[1]
        result = {}

        def serve():
            conn, _ = srv.accept()
            conn.settimeout(60)
            got, first = 0, None
            if send:
                first = time.time()
                block = b"\0" * 65536
                while got < size:
                    conn.sendall(block)
                    got += len(block)
                # sendall returns once the last byte is in the host's send buffer, and busybox nc half-closes
                # at once (its stdin is empty): the transfer ends when the guest has acknowledged every byte.
                deadline = time.time() + 60
                while unacknowledged(conn) > 0 and time.time() < deadline:
                    time.sleep(0.01)
            else:
                while got < size:
                    data = conn.recv(65536)
                    if not data:
                        break
                    first = first or time.time()
                    got += len(data)
            result["seconds"], result["bytes"] = time.time() - first, got
            conn.close()

        t = threading.Thread(target=serve)
        t.start()
        if send:
            d.exec("ra", "sh", "-c", f"nc {gateway} {port} | dd of=/dev/null bs=64k 2>/dev/null", check=False)
        else:
            d.exec("ra", "sh", "-c", f"dd if=/dev/zero bs=64k count={size >> 16} 2>/dev/null | nc {gateway} {port}",
                   check=False)
        t.join(90)
        srv.close()
        return result

    try:
        for send in (False, True):
            r = transfer(send)
            assert r.get("bytes") == size, r
            rate = r["bytes"] / r["seconds"] / (1 << 20)
            way = "host to guest" if send else "guest to host"
            assert 0.7 <= rate <= 1.3, f"{way} under a 1 MiB/s limit went at {rate:.2f} MiB/s"
    finally:
        d.cli("vm", "edit", "ra", "--net-bps", "0")


def test_balloon_takes_from_an_idle_guest_and_gives_back_when_it_allocates(host):
    d = host
    d.create_guest("rm")
    d.cli("vm", "edit", "rm", "--memory-min", "96M")
    d.cli("vm", "start", "rm")
    d.wait_console("rm", "pampa-guest: ready")

    def assigned():
        return d.vm("rm").get("balloon_mib", 256)  # shown while the memory is dynamic and the VM runs

    deadline = time.time() + 60
    while time.time() < deadline and assigned() > 200:
        time.sleep(1)
    low = assigned()
    assert 96 <= low <= 200, f"an idle 256 MiB guest under the host's reserve kept {low} MiB"
    with open(d.log) as f:
        assert re.search(r"balloon: vm rm to \d+ MiB: host has .* under its reserve", f.read())
    # The guest allocates (its root is a tmpfs) 16 MiB at a time, each once it
    # has 30 MiB available again: the controller must give memory back for it
    # to get there (a sample every 5 s, the guest's figures every 5 s).
    def available_mib():
        meminfo = d.exec("rm", "cat", "/proc/meminfo").stdout
        return int(re.search(r"MemAvailable:\s+(\d+) kB", meminfo).group(1)) // 1024

    for i in range(4):
        deadline = time.time() + 40
        while time.time() < deadline and available_mib() < 30:
            time.sleep(1)
        left = available_mib()
        assert left >= 30, f"after {16 * i} MiB the guest has {left} MiB available and {assigned()} MiB"
        d.exec("rm", "dd", "if=/dev/zero", f"of=/root/fill{i}", "bs=1M", "count=16")
    deadline = time.time() + 30
    while time.time() < deadline and assigned() < low + 48:
        time.sleep(1)
    assert assigned() >= low + 48, f"the guest allocated 64 MiB but has {assigned()} MiB (it had {low})"
    assert d.exec("rm", "true").returncode == 0  # not OOM-killed
    with open(d.log) as f:
        assert re.search(r"balloon: vm rm to \d+ MiB: guest has \d+ MiB available", f.read())
    d.cli("vm", "stop", "rm")


def stats(d, name, since="1h"):
    return d.cli_json("vm", "stats", name, "--since", since)


def test_metrics_are_present_and_counters_never_go_back(pair):
    d = pair
    d.exec("ra", "dd", "if=/dev/vda", "of=/dev/null", "bs=64k", "count=64", "iflag=direct")
    time.sleep(11)
    s = stats(d, "ra")
    assert s["step"] == 5
    series = s["series"]
    for key in ("cpu_percent", "memory_assigned_bytes", "disk_read_bps", "net_rx_bps"):
        known = [v for v in series[key] if v is not None]
        assert known, f"{key} has no points: {series[key][-5:]}"
        assert min(known) >= 0
    assert series["time"] == sorted(series["time"])
    assert max(v for v in series["disk_read_bps"] if v is not None) > 0
    h = d.cli_json("host", "stats")
    assert [v for v in h["series"]["memory_total_bytes"] if v]
    assert [v for v in h["series"]["pool_total_bytes"] if v]  # the default pool's file system
    assert "vm" in d.cli("vm", "stats", "ra").stdout.lower() or d.cli("vm", "stats", "ra").stdout
    cap = d.cli_json("host", "capacity", "--cpus", "1", "--memory", "256M")
    assert cap["cpus"] == os.cpu_count() and cap["vcpus"] >= 2
    assert cap["reserve_bytes"] == 1 << 40 and cap["fits"]["count"] == 0  # this "host" keeps a terabyte free


def scrape(d, token):
    req = urllib.request.Request(f"http://127.0.0.1:{d.port}/metrics", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return r.read().decode()


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, s.labels.get("vm", ""))] = s.value
    return out


def test_prometheus_endpoint_parses_and_takes_the_read_only_token(pair):
    d = pair
    with open(os.path.join(d.data, "metrics.token")) as f:
        metrics_token = f.read().strip()
    first = samples(scrape(d, metrics_token))
    assert ("pampa_vm_cpu_seconds_total", "ra") in first
    assert ("pampa_host_memory_total_bytes", "") in first
    assert ("pampa_pool_available_bytes", "") in first
    d.exec("ra", "dd", "if=/dev/vda", "of=/dev/null", "bs=64k", "count=32", "skip=512", "iflag=direct")
    time.sleep(6)
    second = samples(scrape(d, d.token))  # the API token works too
    for (name, vm), v in first.items():
        if name.endswith("_total") and (name, vm) in second:
            assert second[(name, vm)] >= v, f"{name}{{vm={vm}}} went back from {v} to {second[(name, vm)]}"
    # The metrics token reads /metrics only; no token, nothing.
    status, _ = d.api("GET", "/api/v1/vms", token=metrics_token)
    assert status == 401
    with pytest.raises(urllib.error.HTTPError) as e:
        scrape(d, "wrong")
    assert e.value.code == 401


def test_history_survives_a_restart_and_a_kill9(pair):
    d = pair
    before = stats(d, "ra")
    points = {t: v for t, v in zip(before["series"]["time"], before["series"]["cpu_percent"]) if v is not None}
    assert len(points) >= 2
    for stop in (d.stop, d.kill9):
        stop()
        d.start()
        after = stats(d, "ra")
        kept = dict(zip(after["series"]["time"], after["series"]["cpu_percent"]))
        for t, v in points.items():
            assert kept.get(t) == pytest.approx(v, rel=1e-6), f"the point at {t} was {v}, now {kept.get(t)}"
        assert d.exec("ra", "true").returncode == 0
    time.sleep(6)
    after = stats(d, "ra")
    assert after["series"]["time"][-1] > max(points)  # sampling goes on after re-attach


def test_settings_are_kept_and_shown(pair):
    d = pair
    d.cli("vm", "edit", "rb", "--cpu-weight", "250", "--cpu-cap", "80", "--disk-iops", "500", "--net-bps", "20M")
    shown = d.vm("rb")
    assert shown["cpu_weight"] == 250 and shown["cpu_cap"] == 80
    assert shown["disks"][0]["iops"] == 500 and shown["nics"][0]["bps"] == 20 << 20
    text = d.cli("vm", "show", "rb").stdout
    assert "250" in text and "80%" in text
    status, body = d.api("PATCH", "/api/v1/vms/rb", {"cpu_weight": 100, "cpu_cap": 0,
                                                      "disk_limits": [{"disk": 0, "iops": 0}],
                                                      "nic_limits": [{"nic": 0, "bps": 0}]})
    assert status == 200, body
    shown = d.vm("rb")
    assert shown["cpu_weight"] == 100 and not shown.get("cpu_cap") and not shown["disks"][0].get("iops")
    assert json.dumps(shown)  # still a whole VM
