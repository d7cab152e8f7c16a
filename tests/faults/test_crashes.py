"""Worker crashes at seeded random moments: nothing lost, nothing stored twice."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.faults.harness import full_only, run_under_fault, seeds


@pytest.mark.parametrize("seed", seeds())
def test_sigkill_of_a_whole_worker_loses_nothing(fault_stack, seed):
    stack = fault_stack(orders=2000, workers=2)

    def kill_worker():
        victim = stack.workers[seed % 2]
        victim.kill()
        stack.add_worker(f"replacement{seed}", wait=False)
        return f"SIGKILL worker group {victim.log_path.stem}"

    result = run_under_fault(stack, "SIGKILL whole worker", kill_worker, seed, at=None)
    assert result.clean, result
    assert result.run_status == "succeeded"


def test_sigkill_of_every_worker_early_in_a_run_is_recovered_by_a_fresh_worker_alone(fault_stack):
    # Every worker's process group killed 3 s into a 1,500-order sync, one fresh worker started at
    # once: what the dead workers held (claims, retries waiting on them) is sent again once its
    # lease lapses, not after a long staleness period. "Recovered in" is reported in the matrix.
    stack = fault_stack(orders=1500, workers=2)

    def kill_all():
        for victim in stack.workers:
            victim.kill()
        stack.add_worker("fresh", wait=False)
        return "SIGKILL every worker group, one fresh worker at once"

    result = run_under_fault(stack, "SIGKILL every worker 3 s in, one fresh worker", kill_all, 1, at=(3.0, 3.0),
                             timeout=420)
    assert result.clean, result
    assert result.run_status == "succeeded"


@pytest.mark.parametrize("seed", seeds())
def test_sigkill_of_one_pool_child_loses_nothing(fault_stack, seed):
    stack = fault_stack(orders=2000, workers=2)

    def kill_child():
        for worker in stack.workers:
            pid = worker.kill_child()
            if pid:
                return f"SIGKILL pool child {pid} of {worker.log_path.stem}"
        return "no pool child found"

    result = run_under_fault(stack, "SIGKILL one pool child", kill_child, seed, at=None)
    assert result.clean, result
    assert result.run_status == "succeeded"


@pytest.mark.parametrize("seed", seeds()[:3])
def test_sigkill_on_the_per_record_path_loses_nothing(fault_stack, seed):
    stack = fault_stack(orders=300, workers=2, extra_env={"KSYNC_BULK_THRESHOLD": "100000"}, klaviyo_scale=5)

    def kill_child():
        pid = stack.workers[0].kill_child()
        return f"SIGKILL pool child {pid}"

    result = run_under_fault(stack, "SIGKILL pool child (per-record path)", kill_child, seed, at=None)
    assert result.clean, result


@full_only
def test_a_worker_frozen_past_the_visibility_timeout_does_not_double_its_effects(fault_stack):
    stack = fault_stack(orders=1500, workers=2, extra_env={"KSYNC_VISIBILITY_TIMEOUT": "45"})
    frozen = stack.workers[0]

    def freeze():
        os.killpg(frozen.process.pid, signal.SIGSTOP)
        return "SIGSTOP worker group for visibility timeout + 15 s"

    def thaw_later():
        import threading

        def thaw():
            time.sleep(45 + 15)
            os.killpg(frozen.process.pid, signal.SIGCONT)

        threading.Thread(target=thaw, daemon=True).start()

    result = run_under_fault(stack, "task outlives the visibility timeout (worker frozen)", freeze, 1,
                             at=None, after_inject=thaw_later, timeout=400)
    assert result.clean, result
