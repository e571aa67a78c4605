"""High availability on a pool of three hosts (network namespaces, one real etcd, a shared pool): an HA
VM whose host is cut off, or whose pampad is killed and stays dead, comes back on another host within
the goal; the old host's copy is fenced before that, and once the old host is back the VM runs exactly
once with its disk intact (a guest that keeps a counter on its disk never sees it go back). A hung
pampad (SIGSTOP) is fenced by its agent the same way and starts nothing when it wakes; a pampad
killed and restarted within its lease moves nothing; the HA manager's own host dying hands the
election over; an etcd restart fences nothing."""
import glob
import os
import signal
import subprocess
import time

import pytest

from pool_harness import Pool

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# From the host's lease being cut to the guest's ready line on another host (issue 14's goal).
GOAL_S = 30


@pytest.fixture(scope="module")
def pool():
    p = Pool(hosts=3).start()
    p.hosts[0].cli("pool", "create", "shared", "--type", "shared", "--path", p.shared)
    yield p
    p.teardown()


# A guest that counts on its disk, going on from what the disk holds: five writes a second, each renamed
# into place and synced. The counter read back after a recovery is never below one read before it.
COUNTER = ("(i=$(cat /mnt/counter 2>/dev/null || echo 0); while true; do i=$((i+1)); "
           "echo $i > /mnt/counter.new && mv /mnt/counter.new /mnt/counter; sync; sleep 0.2; done)"
           " >/dev/null 2>&1 &")


def running_on(pool, uuid):
    return [h.name for h in pool.hosts if h.qemu_pids(uuid)]


def ha_vm(pool, name, on, priority=None):
    """An HA guest on host `on`, booted, counting on its disk: its uuid."""
    h1 = pool.hosts[0]
    h1.create_guest(name, "--host", on, "--pool", "shared")
    extra = ["--ha-priority", str(priority)] if priority is not None else []
    h1.cli("vm", "edit", name, "--ha", "on", *extra)
    h1.cli("vm", "start", name)
    pool.host(on).wait_console(name, "pampa-guest: ready")
    pool.host(on).exec(name, "sh", "-c", COUNTER)
    return h1.vm(name)["uuid"]


def counter(host, name):
    return int(host.exec(name, "cat", "/mnt/counter").stdout.strip())


def wait_for(what, check, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s")


def recovered(pool, uuid, name, old, watcher, t0):
    """Waits for the VM to run on a host other than `old` and print its ready line there: (host, seconds)."""
    def elsewhere():
        hosts = [h for h in running_on(pool, uuid) if h != old.name]
        return hosts[0] if hosts else None
    new = wait_for(f"vm {name} running elsewhere", elsewhere, GOAL_S + 30)
    pool.host(new).wait_console(name, "pampa-guest: ready", timeout=GOAL_S + 30)
    took = time.time() - t0
    assert watcher.vm(name)["host"] == new
    return pool.host(new), took


def cleanup(pool, name):
    h = next(h for h in pool.hosts if h.proc and h.proc.poll() is None)
    h.cli("vm", "stop", name, check=False)
    h.cli("vm", "delete", name, check=False)


def test_ha_needs_a_shared_pool_and_says_so(pool):
    h1 = pool.hosts[0]
    h1.create_guest("local", "--host", "h1")
    r = h1.cli("vm", "edit", "local", "--ha", "on", check=False)
    assert r.returncode != 0 and "shared pool" in r.stderr
    r = h1.cli("vm", "edit", "local", "--ha-priority", "5000", check=False)
    assert r.returncode != 0 and "0 to 1000" in r.stderr
    h1.cli("vm", "delete", "local")


def test_a_cut_off_host_fences_its_copy_and_the_vm_restarts_elsewhere_exactly_once(pool):
    h1, h2, h3 = pool.hosts
    uuid = ha_vm(pool, "web", "h2", priority=10)
    status = h1.cli_json("ha", "status")
    assert status["manager"] in ("h1", "h2", "h3")
    assert [(v["name"], v["state"], v["priority"]) for v in status["vms"]] == [("web", "started", 10)]
    # The second writer the fencing is there to prevent: QEMU's lock on the disk refuses one outright.
    disk = glob.glob(os.path.join(pool.shared, "web*"))[0]
    r = subprocess.run(["qemu-img", "info", disk], capture_output=True, text=True)
    assert r.returncode != 0 and "lock" in r.stderr
    wait_for("a few counts on disk", lambda: counter(h2, "web") >= 3, 30)
    before = counter(h2, "web")

    t0 = time.time()
    pool.cut(h2)
    # h2 kills its own copy before its lease can end anywhere else (fencing after 7 s, lease 10 s).
    wait_for("h2 fencing its copy", lambda: not h2.qemu_pids(uuid), 10)
    fenced = time.time() - t0
    new, took = recovered(pool, uuid, "web", h2, h1, t0)
    print(f"\nlink cut: fenced after {fenced:.1f} s, running on {new.name} and ready {took:.1f} s after the cut")
    assert fenced < 10
    assert took < GOAL_S
    # The disk kept every count written before the fence.
    after = counter(new, "web")
    assert after >= before
    new.exec("web", "sh", "-c", COUNTER)

    pool.heal(h2)
    wait_for("h2 online again", lambda: h1.cli_json("host", "show", "h2")["state"] == "online", 30)
    time.sleep(3)  # h2's pampad has had time to look at the store again: it must not start its copy
    assert running_on(pool, uuid) == [new.name]
    assert h2.vm("web")["host"] == new.name and h2.vm("web")["state"] == "running"
    assert len([v for v in h2.vms() if v["name"] == "web"]) == 1
    wait_for("the counter going on", lambda: counter(new, "web") > after + 3, 30)
    status = h3.cli_json("ha", "status")
    assert [(v["name"], v["host"], v["state"]) for v in status["vms"]] == [("web", new.name, "started")]
    text = "\n".join(e["message"] for e in status["events"])
    assert "host h2 is lost" in text and f"started on host {new.name}" in text
    assert "manager: " in h3.cli("ha", "status").stdout
    cleanup(pool, "web")


def test_a_dead_pampad_is_fenced_by_its_agent_and_the_vm_restarts_elsewhere(pool):
    h1, h2, h3 = pool.hosts
    uuid = ha_vm(pool, "db", "h3")
    wait_for("a few counts on disk", lambda: counter(h3, "db") >= 3, 30)
    before = counter(h3, "db")
    t0 = time.time()
    h3.kill9()  # and left dead: only the fencing agent remains to stop the copy
    wait_for("the agent fencing h3's copy", lambda: not h3.qemu_pids(uuid), 10)
    fenced = time.time() - t0
    new, took = recovered(pool, uuid, "db", h3, h1, t0)
    print(f"\npampad killed: fenced after {fenced:.1f} s, ready on {new.name} {took:.1f} s after the kill")
    assert took < GOAL_S
    assert counter(new, "db") >= before
    with open(os.path.join(h3.data, "fence.log")) as f:
        assert "fenced: killed QEMU pid" in f.read()
    # h3 back: it forgets the VM that moved and starts nothing.
    h3.start()
    time.sleep(3)
    assert running_on(pool, uuid) == [new.name]
    assert h3.vm("db")["host"] == new.name
    cleanup(pool, "db")


def test_a_hung_pampad_is_fenced_by_its_agent_and_does_not_restart_the_vm_when_it_wakes(pool):
    h1, h2, h3 = pool.hosts
    uuid = ha_vm(pool, "hung", "h2")
    t0 = time.time()
    h2.proc.send_signal(signal.SIGSTOP)  # alive but answering nothing, renewing nothing
    try:
        wait_for("the agent fencing h2's copy", lambda: not h2.qemu_pids(uuid), 10)
        new, took = recovered(pool, uuid, "hung", h2, h1, t0)
        assert took < GOAL_S
    finally:
        h2.proc.send_signal(signal.SIGCONT)
    wait_for("h2 online again", lambda: h1.cli_json("host", "show", "h2")["state"] == "online", 30)
    time.sleep(3)
    assert running_on(pool, uuid) == [new.name]
    cleanup(pool, "hung")


def test_a_pampad_restarted_within_its_lease_moves_nothing(pool):
    h1, h2, h3 = pool.hosts
    uuid = ha_vm(pool, "app", "h1")
    pids = h1.qemu_pids(uuid)
    h1.kill9()
    h1.start()
    time.sleep(15)  # past the fencing deadline and the lease of the killed pampad
    assert h1.qemu_pids(uuid) == pids and running_on(pool, uuid) == ["h1"]
    before = counter(h1, "app")
    wait_for("the counter going on", lambda: counter(h1, "app") > before, 10)
    assert [v["state"] for v in h2.cli_json("ha", "status")["vms"]] == ["started"]
    cleanup(pool, "app")


def test_an_etcd_restart_fences_nothing(pool):
    h1, h2, h3 = pool.hosts
    uuid = ha_vm(pool, "mail", "h2")
    pids = h2.qemu_pids(uuid)
    away = pool.restart_etcd()
    time.sleep(15)
    assert away < 5
    assert h2.qemu_pids(uuid) == pids and running_on(pool, uuid) == ["h2"]
    cleanup(pool, "mail")


def test_the_managers_own_host_dying_hands_the_election_over(pool):
    h1 = pool.hosts[0]
    manager = pool.host(h1.cli_json("ha", "status")["manager"])
    watcher = next(h for h in pool.hosts if h is not manager)
    uuid = ha_vm(pool, "crm", manager.name)
    t0 = time.time()
    pool.cut(manager)
    new, took = recovered(pool, uuid, "crm", manager, watcher, t0)
    status = watcher.cli_json("ha", "status")
    assert status["manager"] not in ("", manager.name)
    print(f"\nmanager {manager.name} cut: {status['manager']} took over, crm ready on {new.name} after {took:.1f} s")
    assert took < GOAL_S
    pool.heal(manager)
    wait_for("the old manager online again",
             lambda: watcher.cli_json("host", "show", manager.name)["state"] == "online", 30)
    time.sleep(3)
    assert running_on(pool, uuid) == [new.name]
    cleanup(pool, "crm")
