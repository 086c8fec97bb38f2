"""The allocator the `tunesmith` command runs under: jemalloc when the system has it (a restart with LD_PRELOAD),
never twice, never against the user's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith import allocator

LIB = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_PRELOAD is Linux's")


@linux_only
def test_the_restart_environment_preloads_jemalloc_before_what_the_user_preloads():
    env = allocator.preload_env({"PATH": "/bin", "LD_PRELOAD": "/opt/libfoo.so"}, LIB)
    assert env["LD_PRELOAD"] == f"{LIB}:/opt/libfoo.so"
    assert "MALLOC_CONF" not in env  # jemalloc's own defaults
    assert env["PATH"] == "/bin"
    assert allocator.preload_env(env, LIB) is None  # the restarted process does not restart again


@linux_only
def test_the_users_allocator_settings_are_kept():
    assert allocator.preload_env({"MALLOC_CONF": "narenas:2"}, LIB)["MALLOC_CONF"] == "narenas:2"  # passed on
    assert allocator.preload_env({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"}, LIB) is None  # already preloaded
    assert allocator.preload_env({allocator.SWITCH: "system"}, LIB) is None
    assert allocator.preload_env({allocator.SWITCH: "System "}, LIB) is None
    assert allocator.preload_env({}, None) is None  # nothing to preload


def test_a_run_records_the_allocator_it_ran_under():
    from tunesmith.runs import env_info

    assert env_info()["allocator"] == allocator.in_use()
    assert allocator.in_use() in {"jemalloc", "tcmalloc", "mimalloc", "system"}


@pytest.mark.parametrize(
    ("argv", "restarts"), [(["run", "p"], True), (["train"], True), (["eval", "p"], False), ([], False)]
)
def test_the_training_verbs_decide_the_allocator_before_anything_else(monkeypatch, argv, restarts):
    import tunesmith.cli as cli

    calls = []
    monkeypatch.setattr(allocator, "restart_under_jemalloc", lambda: calls.append("restart"))
    monkeypatch.setattr(cli, "app", lambda: calls.append("app"))
    monkeypatch.setattr(sys, "argv", ["tunesmith", *argv])
    cli.main()
    assert calls == (["restart", "app"] if restarts else ["app"])


RESTART = "from tunesmith import allocator; allocator.restart_under_jemalloc(); print(allocator.in_use())"


@linux_only
@pytest.mark.skipif(allocator.find_jemalloc() is None, reason="no libjemalloc on this machine")
def test_the_process_starts_again_under_jemalloc_unless_told_not_to():
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF", allocator.SWITCH)}
    run = lambda extra: subprocess.run(
        [sys.executable, "-c", RESTART], env={**env, **extra}, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run({}) == "jemalloc"
    assert run({allocator.SWITCH: "system"}) == "system"
