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
