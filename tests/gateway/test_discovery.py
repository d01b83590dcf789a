"""The gateway's view of the broker: fresh listings for 404s, versions folded.

- A backend that subscribed after the gateway cached the broker's topic
  listing is found on the first call (a miss refreshes the listing), while
  a flood of calls for unknown names costs the broker only a few listings.
- ``GET /services`` lists a dasf_geo service once, with the versions that
  answer on versioned topics of their own (``<name>_<version>``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import pytest

from dasf_geo.gateway.discovery import LISTING_MIN_INTERVAL, group_versions
from tests.conftest import timeout
from tests.gateway.conftest import gateway_client, settings
from tests.transport.conftest import Config, running_listener

pytestmark = pytest.mark.timeout(120)


class InfoHandler:
    """A backend that only answers metadata requests with ``api_info``."""

    debug = False

    def __init__(self, topic: str, api_info: dict[str, Any]) -> None:
        self.topic = topic
        self._api_info = api_info

    def handle(self, payload: Any, progress: Any = None, accept: Any = ()) -> bytes:
        return b"null"

    def info(self) -> str:
        return json.dumps({"title": self.topic})

    def api_info(self) -> str:
        return json.dumps(self._api_info)


def plain_info(description: str = "a backend") -> dict[str, Any]:
    return {"functions": [], "classes": [], "rpc_schema": {"description": description}}


def service_info(name: str, version: str, shadow: bool = False) -> dict[str, Any]:
    """API info as a dasf_geo service sends it (the ``"service"`` object)."""
    return {
        **plain_info(f"the {name} service"),
        "service": {
            "name": name,
            "version": version,
            "shadow": shadow,
            "versioned_topic": f"{name}_{version.replace('.', '-')}",
        },
    }


# --- a miss refreshes the listing ---------------------------------------------


async def test_a_backend_that_just_subscribed_is_found_on_the_first_call(
    broker: Any,
) -> None:
    from dasf_geo.gateway import create_app

    topic = "gw_just_started"
    async with gateway_client(create_app(settings(broker))) as client:
        # the listing is now cached (for a second), without the topic
        assert (await client.get(f"/services/{topic}")).status_code == 404
        config = Config(base=broker.url, topic=topic)
        async with running_listener(InfoHandler(topic, plain_info()), config):
            response = await client.get(f"/services/{topic}")
            assert response.status_code == 200, response.text
            assert response.json() == plain_info()


async def test_a_flood_of_unknown_names_costs_a_few_listings(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dasf_geo.gateway import create_app
    from dasf_geo.gateway.discovery import ServiceDirectory

    fetches: list[float] = []
    fetch = ServiceDirectory._fetch_listing

    async def counted(self: Any, base: str, header: Any) -> Any:
        fetches.append(time.monotonic())
        return await fetch(self, base, header)

    monkeypatch.setattr(ServiceDirectory, "_fetch_listing", counted)
    async with gateway_client(create_app(settings(broker))) as client:
        # at once: every miss shares the refreshes under way
        responses = await asyncio.gather(
            *(client.get(f"/services/nobody_{i}") for i in range(60))
        )
        assert {r.status_code for r in responses} == {404}
        assert len(fetches) <= 3, fetches
        # one after the other: at most one listing begins per interval
        fetches.clear()
        start = time.monotonic()
        for i in range(10):
            response = await client.get(f"/services/nobody_again_{i}")
            assert response.status_code == 404
        took = time.monotonic() - start
        assert len(fetches) <= took / LISTING_MIN_INTERVAL + 2, (len(fetches), took)
        starts = sorted(fetches)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= LISTING_MIN_INTERVAL * 0.9 for gap in gaps), gaps


# --- versions -------------------------------------------------------------------


def test_versioned_topics_fold_into_their_service() -> None:
    found = [
        ("weather", service_info("weather", "1.2.0")),
        ("weather_1-2-0", service_info("weather", "1.2.0")),
        ("weather_2-0-0", service_info("weather", "2.0.0", shadow=True)),
        ("plain", plain_info()),
        # a versioned topic whose service's own topic is not listed stays
        ("alone_1-0-0", service_info("alone", "1.0.0")),
    ]
    listed = [s.as_json() for s in group_versions(found)]
    assert [s["topic"] for s in listed] == ["weather", "plain", "alone_1-0-0"]
    assert listed[0]["versions"] == [
        {
            "version": "1.2.0",
            "topic": "weather_1-2-0",
            "shadow": False,
            "url": "/services/weather_1-2-0",
        },
        {
            "version": "2.0.0",
            "topic": "weather_2-0-0",
            "shadow": True,
            "url": "/services/weather_2-0-0",
        },
    ]
    assert "versions" not in listed[1]  # no dasf_geo service: nothing to say
    assert listed[2]["versions"] == []


async def test_get_services_lists_a_service_once_with_its_versions(
    broker: Any,
) -> None:
    from dasf_geo.gateway import create_app

    info = service_info("gw_versioned", "1.2.0")
    async with (
        running_listener(
            InfoHandler("gw_versioned", info),
            Config(base=broker.url, topic="gw_versioned"),
        ),
        running_listener(
            InfoHandler("gw_versioned_1-2-0", info),
            Config(base=broker.url, topic="gw_versioned_1-2-0"),
        ),
        gateway_client(create_app(settings(broker))) as client,
    ):
        listed = (await client.get("/services", timeout=timeout(30))).json()["services"]
        mine = [s for s in listed if s["topic"].startswith("gw_versioned")]
        assert mine == [
            {
                "topic": "gw_versioned",
                "description": "the gw_versioned service",
                "functions": [],
                "classes": [],
                "url": "/services/gw_versioned",
                "versions": [
                    {
                        "version": "1.2.0",
                        "topic": "gw_versioned_1-2-0",
                        "shadow": False,
                        "url": "/services/gw_versioned_1-2-0",
                    }
                ],
            }
        ]
        # the versioned topic still answers on its own
        versioned = await client.get("/services/gw_versioned_1-2-0")
        assert versioned.status_code == 200
