"""OGC API - Processes: the gateway's responses beside pygeoapi's.

pygeoapi (the OGC reference implementation, 0.21.0: the newest release for
Python 3.11) runs its ``hello-world`` process in a cached venv of its own
(tests/gateway/modules/pygeoapi_probe.py, its Flask test client); the
gateway runs ``examples/geo_service.py``'s ``histogram``. The same requests
go to both and the *shape* of the answers is compared: status codes,
headers that the standard names, the members of each JSON object and their
JSON types, the link relations. docs/http.md lists the differences that
remain on purpose.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import timeout
from tests.gateway.conftest import GEO_TOPIC, gateway_client, settings
from tests.interop import peers

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(600)]

#: the newest pygeoapi that installs on Python 3.11 (0.22 and later need 3.12)
PYGEOAPI_REQUIREMENTS = ("pygeoapi==0.21.0",)
PROBE = Path(__file__).parent / "modules" / "pygeoapi_probe.py"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


@pytest.fixture(scope="module")
def pygeoapi(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """pygeoapi's answers (see the probe's docstring)."""
    python = peers.peer_python("pygeoapi", PYGEOAPI_REQUIREMENTS)
    work = tmp_path_factory.mktemp("pygeoapi")
    done = subprocess.run(
        [str(python), str(PROBE), str(work)],
        capture_output=True,
        text=True,
        timeout=timeout(300),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return {"status": response.status_code, "headers": response.headers, "json": body}


@pytest.fixture(scope="module")
def ours(broker: Any, geo_backend: Any, tmp_path_factory: pytest.TempPathFactory):
    """The gateway's answers to the same requests (``histogram`` for hello-world)."""
    from dasf_geo.gateway import create_app

    process = f"{GEO_TOPIC}.histogram"
    jobs = tmp_path_factory.mktemp("jobs") / "jobs.db"

    async def collect() -> dict[str, Any]:
        app = create_app(settings(broker, jobs_db=jobs))
        async with gateway_client(app) as client:
            out = {
                "landing": _answer(await client.get("/ogc/")),
                "conformance": _answer(await client.get("/ogc/conformance")),
                "processes": _answer(await client.get("/ogc/processes")),
                "process": _answer(await client.get(f"/ogc/processes/{process}")),
            }
            created = await client.post(
                f"/ogc/processes/{process}/execution",
                json={"inputs": {"values": [1, 2, 2, 3], "bins": 3}},
                headers={"Prefer": "respond-async"},
            )
            out["execute_async"] = _answer(created)
            job = created.headers["location"].rsplit("/", 1)[-1]
            for _ in range(int(timeout(60) / 0.1)):
                status = await client.get(f"/ogc/jobs/{job}")
                if status.json()["status"] in ("successful", "failed"):
                    break
                await asyncio.sleep(0.1)
            out["job"] = _answer(status)
            out["results"] = _answer(await client.get(f"/ogc/jobs/{job}/results"))
            out["missing_process"] = _answer(await client.get("/ogc/processes/nope"))
            out["missing_job"] = _answer(await client.get("/ogc/jobs/nope"))
            return out

    return asyncio.run(collect())


def _types(obj: dict[str, Any]) -> dict[str, str]:
    """Member name -> JSON type of each member of ``obj``."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean"}
    return {
        key: names.get(type(value), "number" if value is not None else "null")
        for key, value in obj.items()
    }


def _common_types_agree(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    mine, other = _types(ours), _types(theirs)
    for key in mine.keys() & other.keys():
        if "null" in (mine[key], other[key]):
            continue  # a member not set yet (e.g. ``finished``, ``parameters``)
        assert mine[key] == other[key], (key, ours[key], theirs[key])


def test_landing_page(ours: dict[str, Any], pygeoapi: dict[str, Any]) -> None:
    mine, theirs = ours["landing"], pygeoapi["landing"]
    assert mine["status"] == theirs["status"] == 200
    link_keys = {"href", "rel", "type"}
    for body in (mine["json"], theirs["json"]):
        assert all(link_keys <= set(link) for link in body["links"])
    rels = {link["rel"] for link in mine["json"]["links"]}
    their_rels = {link["rel"] for link in theirs["json"]["links"]}
    # what pygeoapi links for Processes, by the standard's relation names
    # (pygeoapi says ``conformance`` for the conformance link, which OGC API
    # Common also allows; the gateway uses the full URI as the standard's
    # examples do)
    processes_rels = {"self", "service-desc", REL + "processes", REL + "job-list"}
    assert processes_rels <= their_rels
    assert processes_rels <= rels
    assert {"conformance", REL + "conformance"} & their_rels
    assert {"conformance", REL + "conformance"} & rels


def test_conformance(ours: dict[str, Any], pygeoapi: dict[str, Any]) -> None:
    mine = set(ours["conformance"]["json"]["conformsTo"])
    theirs = set(pygeoapi["conformance"]["json"]["conformsTo"])
    processes = {c for c in theirs if c.startswith(CONF)}
    # the classes both implement; pygeoapi's ``callback`` (subscribers
    # notified by URL) and ``oas30`` (an OpenAPI 3.0 document; the gateway's
    # is 3.1) are the ones the gateway does not claim
    assert processes - mine == {CONF + "callback", CONF + "oas30"}
    assert CONF + "core" in mine and CONF + "json" in mine


def test_process_list_and_description(
    ours: dict[str, Any], pygeoapi: dict[str, Any]
) -> None:
    for name in ("processes", "process"):
        assert ours[name]["status"] == pygeoapi[name]["status"] == 200
    mine = ours["processes"]["json"]
    theirs = pygeoapi["processes"]["json"]
    assert set(mine) >= {"processes", "links"} <= set(theirs)
    summary, their_summary = mine["processes"][0], theirs["processes"][0]
    required = {"id", "version", "jobControlOptions", "links"}
    assert required <= set(summary) and required <= set(their_summary)
    _common_types_agree(summary, their_summary)
    # the gateway also declares ``dismiss`` (DELETE /jobs/{id}), which
    # pygeoapi implements without declaring it
    assert set(their_summary["jobControlOptions"]) == {
        "sync-execute",
        "async-execute",
    }
    assert set(summary["jobControlOptions"]) == {
        "sync-execute",
        "async-execute",
        "dismiss",
    }
    description = ours["process"]["json"]
    their_description = pygeoapi["process"]["json"]
    assert {"inputs", "outputs"} <= set(description) & set(their_description)
    _common_types_agree(description, their_description)
    for inputs in (description["inputs"], their_description["inputs"]):
        for value in inputs.values():
            assert "schema" in value and "title" in value


def test_async_execution_and_job_status(
    ours: dict[str, Any], pygeoapi: dict[str, Any]
) -> None:
    mine, theirs = ours["execute_async"], pygeoapi["execute_async"]
    assert mine["status"] == theirs["status"] == 201
    for answer in (mine, theirs):
        headers = {k.lower(): v for k, v in dict(answer["headers"]).items()}
        assert headers["preference-applied"] == "respond-async"
        assert "/jobs/" in headers["location"]
    status, their_status = ours["job"]["json"], pygeoapi["job"]["json"]
    assert status["status"] == their_status["status"] == "successful"
    members = {
        "type",
        "processID",
        "jobID",
        "status",
        "message",
        "progress",
        "created",
        "started",
        "finished",
        "updated",
        "links",
    }
    assert members <= set(their_status)
    assert members <= set(status)
    _common_types_agree(status, their_status)
    assert status["type"] == their_status["type"] == "process"
    assert status["progress"] == their_status["progress"] == 100
    rels = {link["rel"] for link in status["links"]}
    assert REL + "results" in rels
    assert REL + "results" in {link["rel"] for link in their_status["links"]}
    assert ours["results"]["status"] == pygeoapi["results"]["status"] == 200


def test_unknown_process_and_job(
    ours: dict[str, Any], pygeoapi: dict[str, Any]
) -> None:
    for name in ("missing_process", "missing_job"):
        assert ours[name]["status"] == pygeoapi[name]["status"] == 404
        mine = ours[name]["json"]
        assert isinstance(mine, dict) and isinstance(pygeoapi[name]["json"], dict)
    # pygeoapi answers ``{"code", "type", "description"}`` with a short
    # type; the gateway an RFC 7807 problem with the OGC exception URI
    assert pygeoapi["missing_process"]["json"]["type"] == "NoSuchProcess"
    assert ours["missing_process"]["json"]["type"].endswith("/no-such-process")
    assert ours["missing_job"]["json"]["type"].endswith("/no-such-job")
