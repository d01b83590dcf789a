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


def test_service_through_dasf_broker_django(django_site, topic, monkeypatch):
    """A service on dasf-broker-django (plain URL layout): its entrypoints,
    its parameters and call_service reach it there too."""
    import dasf_geo
    from dasf_geo.service import call_service

    for slug in (topic, f"{topic}_1-0-0"):
        django_site.create_topic(slug, anonymous=True)
    url = django_site.endpoint().base
    svc = Service(topic, "1.0.0")
    svc.add_parameter("greeting", "Hello")

    @svc.entrypoint
    def greet(name: str) -> str:
        return f"{svc.get_parameter('greeting')} {name}"

    svc.start(websocket_url=url)
    try:
        with dasf_geo.connect(topic, websocket_url=url, timeout=timeout(60)) as c:
            assert c.greet(name="Django") == "Hello Django"
            c.parameters["greeting"] = "Moin"
        monkeypatch.setenv("DASF_GEO_BROKER_URL", url)
        assert call_service(topic, "greet", {"name": "again"}) == "Moin again"
        assert (
            call_service(topic, "greet", {"name": "v"}, service_version="1.0.0")
            == "Moin v"
        )
    finally:
        svc.stop()
