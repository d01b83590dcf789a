"""dasf_geo's own event loops: uvloop where installed, opt-out by environment."""

from __future__ import annotations

import asyncio

import pytest

from dasf_geo import _loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_opting_out_gives_the_standard_loop(monkeypatch):
    monkeypatch.setenv("DASF_GEO_UVLOOP", "0")
    assert _loop.loop_factory() is asyncio.new_event_loop
    assert _loop.run(_loop_module()).startswith("asyncio")


def test_uvloop_is_used_where_installed(monkeypatch):
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv("DASF_GEO_UVLOOP", raising=False)
    assert _loop.loop_factory() is uvloop.new_event_loop
    assert _loop.run(_loop_module()).startswith("uvloop")


def test_without_uvloop_the_standard_loop_is_used(monkeypatch):
    import sys

    monkeypatch.delenv("DASF_GEO_UVLOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import fails
    assert _loop.loop_factory() is asyncio.new_event_loop


def test_run_leaves_no_loop_policy_behind(monkeypatch):
    monkeypatch.delenv("DASF_GEO_UVLOOP", raising=False)
    policy = asyncio.get_event_loop_policy()
    assert _loop.run(_loop_module())
    assert asyncio.get_event_loop_policy() is policy
