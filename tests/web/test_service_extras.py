"""The dashboard's parameters, monitoring and notifications panels against
``examples/monitoring_service.py`` (a ``dasf_geo.service`` service) behind
``dasf-geo gateway``. Skips where that example is not part of the tree."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, free_port
from tests.e2e.conftest import BrokerProc, Proc, start_broker, wait_until
from tests.web.conftest import screenshot
from tests.web.dashboard_page import watch

EXAMPLE = REPO_ROOT / "examples" / "monitoring_service.py"

pytestmark = pytest.mark.skipif(
    not EXAMPLE.exists(), reason="examples/monitoring_service.py is not in this tree"
)


@pytest.fixture(scope="module")
def monitoring() -> Iterator[str]:
    """Broker, the monitoring example (1 s interval) and a gateway; its URL."""
    broker: BrokerProc = start_broker()
    port = free_port()
    procs = [
        Proc(
            [sys.executable, str(EXAMPLE)],
            env={
                "MONITORING_INTERVAL": "1",
                "DE_BACKEND_HOST": "127.0.0.1",
                "DE_BACKEND_PORT": str(broker.port),
            },
        ).start()
    ]
    procs.append(
        Proc(
            [
                sys.executable,
                "-m",
                "dasf_geo.cli.tool",
                "gateway",
                "--broker",
                broker.url,
                "--port",
                str(port),
            ]
        ).start()
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import json
        import urllib.request

        def listed() -> bool:
            with urllib.request.urlopen(f"{url}/services", timeout=2) as response:
                topics = [s["topic"] for s in json.load(response)["services"]]
            return "monitoring_service" in topics

        wait_until(listed, "the monitoring service behind the gateway", 60, procs[1])
        yield url
    finally:
        for proc in procs:
            proc.stop()
        broker.proc.stop()


def test_parameters_monitoring_and_notifications(browser: Any, monitoring: str) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    try:
        page = context.new_page()
        watched = watch(page)
        page.goto(f"{monitoring}/#monitoring_service/latest_mean")
        field = page.locator("[data-testid=parameters] input[aria-label=threshold]")
        field.wait_for(timeout=20000)
        assert field.input_value() == "280"
        # a wrong type: the service's message next to the field
        field.fill('"warm"')
        page.click("[data-testid=parameters] button")
        error = page.locator("[data-testid=parameters] .field-error")
        error.wait_for(timeout=20000)
        assert "threshold" in error.inner_text() and "float" in error.inner_text()
        # a threshold the regional mean crosses: notifications follow
        field.fill("265")
        page.click("[data-testid=parameters] button")
        page.wait_for_function(
            "() => !document.querySelector('[data-testid=parameters] .field-error')"
            ".textContent || document.querySelector('[data-testid=parameters] "
            ".field-error').hidden",
            timeout=20000,
        )
        assert field.input_value() == "265"
        page.wait_for_function(
            "() => document.querySelector('[data-testid=notifications]')"
            "?.textContent.includes('threshold of 265.0 K')",
            timeout=60000,
        )
        page.click("[data-testid=monitor] button")
        plot = page.locator(
            "[data-testid=monitor] figcaption", has_text="regional_mean"
        )
        plot.wait_for(timeout=20000)
        screenshot(page, "service_extras")
        assert watched.errors == []
        assert watched.outside(int(monitoring.rsplit(":", 1)[1])) == []
    finally:
        context.close()
