"""One Klaviyo stand-in per test module, reset before each test that takes ``k``."""

import pytest

from sandbox.klaviyo import KlaviyoStandIn


@pytest.fixture(scope="module")
def standin():
    # Limits x100 keep them out of the way; short job stages keep bulk-job tests quick.
    with KlaviyoStandIn(rate_limit_scale=100, job_stage_seconds=0.05) as k:
        yield k


@pytest.fixture
def k(standin):
    standin.reset(reset_config=True)
    return standin
