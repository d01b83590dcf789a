"""A dasf_geo.service service answers demessaging 0.6.4's generated client."""

from __future__ import annotations

import pytest

from dasf_geo.service import Service
from tests.conftest import timeout
from tests.interop import peers

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_service_entrypoints_answer_demessaging_client(
    our_broker, dm_python, topic, tmp_path
):
    # the entrypoints have the reference module's signatures, so the stub
    # demessaging generates from that module calls them unchanged
    svc = Service(topic, "1.0.0")

    @svc.entrypoint
    def hello_world() -> str:
        return "Hello from a service"

    @svc.entrypoint(monitor=True)
    def echo(text: str) -> str:
        return text

    svc.start(broker=our_broker.base)
    try:
        stub = peers.generate_dm_stub(
            dm_python, our_broker, topic, tmp_path, timeout(60)
        )
        lines = peers.run_dm_client(
            dm_python,
            stub,
            [{"function": "hello_world"}, {"function": "echo", "args": {"text": "hi"}}],
            timeout(90),
        )
        assert [line.get("result") for line in lines] == ["Hello from a service", "hi"]
        assert [r["value"]["result"] for r in svc.monitor(["echo"])] == ["hi"]
    finally:
        svc.stop()
