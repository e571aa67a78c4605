import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from pampa_harness import Pampad  # noqa: E402


@pytest.fixture(scope="session")
def pampad():
    """One pampad for the session; each module cleans up what it made."""
    d = Pampad().start()
    yield d
    d.teardown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test on a pool shows what each host's pampad logged during it: the pool's files,
    its logs with them, are removed when the module ends."""
    outcome = yield
    rep = outcome.get_result()
    pool = getattr(item, "funcargs", {}).get("pool")
    if pool is None or not hasattr(pool, "hosts"):
        return
    if rep.when == "setup":
        item.pool_log_marks = {h.name: os.path.getsize(h.log) if os.path.exists(h.log) else 0 for h in pool.hosts}
    elif rep.when == "call" and rep.failed:
        for h in pool.hosts:
            try:
                with open(h.log, errors="replace") as f:
                    f.seek(getattr(item, "pool_log_marks", {}).get(h.name, 0))
                    lines = f.read().splitlines()
            except OSError as e:
                lines = [f"cannot read {h.log}: {e}"]
            rep.sections.append((f"pampad log of {h.name} during the test (last 60 lines)", "\n".join(lines[-60:])))
