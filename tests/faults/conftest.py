"""Fault-suite fixtures: a stack tuned to recover within a test, and every test marked ``faults``."""

import pytest

from tests.faults.harness import FAST_RECOVERY


def pytest_collection_modifyitems(items):
    for item in items:
        if "/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fault_stack(make_stack):
    """``fault_stack(orders=2000, workers=2, extra_env={...}, ...)``: a stack with fast recovery settings."""
    def build(**kwargs):
        kwargs["extra_env"] = FAST_RECOVERY | kwargs.pop("extra_env", {})
        return make_stack(**kwargs)

    return build
