"""OGC API - Processes: descriptions checked with the OGC models, sync and
async execution, progress, Server-Sent Events, the SQLite job store."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr

from tests.conftest import SAMPLE_DATA, timeout
from tests.gateway.conftest import BIG_TOPIC, GEO_TOPIC, gateway_client, settings

pytestmark = pytest.mark.timeout(240)

OGC_CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"


@pytest.fixture
async def ogc(broker: Any, geo_backend: Any, big_backend: Any, tmp_path: Any):
    from dasf_geo.gateway import create_app

    app = create_app(settings(broker, jobs_db=tmp_path / "jobs.db", job_retention=3))
    async with gateway_client(app) as client:
        yield client


async def test_landing_conformance_and_process_list(ogc: httpx.AsyncClient) -> None:
    from ogc_api_processes_client.models import (
        ConfClasses,
        LandingPage,
        ProcessList,
    )

    landing = (await ogc.get("/ogc/")).json()
    LandingPage.from_dict(landing)
    rels = {link["rel"] for link in landing["links"]}
    assert {
        "self",
        "service-desc",
        "http://www.opengis.net/def/rel/ogc/1.0/conformance",
        "http://www.opengis.net/def/rel/ogc/1.0/processes",
        "http://www.opengis.net/def/rel/ogc/1.0/job-list",
    } <= rels
    conf = (await ogc.get("/ogc/conformance")).json()
    ConfClasses.from_dict(conf)
    assert OGC_CONF + "core" in conf["conformsTo"]
    listing = (await ogc.get("/ogc/processes")).json()
    ProcessList.from_dict(listing)
    ids = {p["id"] for p in listing["processes"]}
    assert {
        f"{GEO_TOPIC}.get_data",
        f"{GEO_TOPIC}.stations",
        f"{BIG_TOPIC}.make",
    } <= ids


async def test_process_description(ogc: httpx.AsyncClient) -> None:
    from ogc_api_processes_client.models import Process

    response = await ogc.get(f"/ogc/processes/{GEO_TOPIC}.monthly_anomaly")
    assert response.status_code == 200
    doc = response.json()
    Process.from_dict(doc)
    assert doc["inputs"]["ds"]["schema"]["contentMediaType"] == "application/x-netcdf"
    assert doc["inputs"]["ds"]["minOccurs"] == 1
    assert doc["inputs"]["variable"]["minOccurs"] == 0
    assert doc["inputs"]["variable"]["schema"]["default"] == "tas"
    assert doc["outputs"]["result"]["schema"]["contentMediaType"] == (
        "application/x-netcdf"
    )
    assert doc["jobControlOptions"] == ["sync-execute", "async-execute", "dismiss"]
    missing = await ogc.get(f"/ogc/processes/{GEO_TOPIC}.nope")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/no-such-process")
    assert missing.json()["detail"] == f"no process '{GEO_TOPIC}.nope' on this gateway"


async def test_sync_execution_raw_and_document(ogc: httpx.AsyncClient) -> None:
    url = f"/ogc/processes/{GEO_TOPIC}.histogram/execution"
    body = {"inputs": {"values": [1, 2, 2, 3, 3, 3], "bins": 3}}
    raw = await ogc.post(url, json=body)
    assert raw.status_code == 200
    from dasf_geo.data import decode_by_schema

    info = (await ogc.get(f"/services/{GEO_TOPIC}")).json()
    schema = next(f for f in info["functions"] if f["name"] == "histogram")
    value = decode_by_schema(schema["return_schema"], raw.json(), {})
    assert value.tolist() == [1, 2, 3]
    doc = await ogc.post(url, json={**body, "response": "document"})
    assert doc.status_code == 200
    assert doc.json() == {"result": raw.json()}
    # a qualified value is taken as its value
    qualified = await ogc.post(
        url, json={"inputs": {"values": {"value": [5, 5]}, "bins": {"value": 1}}}
    )
    assert qualified.status_code == 200


async def test_sync_netcdf_output(ogc: httpx.AsyncClient) -> None:
    nc = (SAMPLE_DATA / "gridded_temperature.nc").read_bytes()
    response = await ogc.post(
        f"/ogc/processes/{GEO_TOPIC}.monthly_anomaly/execution",
        json={
            "inputs": {
                "ds": {
                    "value": base64.b64encode(nc).decode(),
                    "mediaType": "application/x-netcdf",
                }
            },
            "outputs": {"result": {"format": {"mediaType": "application/x-netcdf"}}},
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-netcdf; xarray=Dataset"
    got = xr.load_dataset(io.BytesIO(response.content))
    source = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    np.testing.assert_allclose(
        got["tas_anomaly"].values,
        (source["tas"] - source["tas"].mean("time")).values,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{oops", "the execute request is not valid JSON"),
        (b"[]", "the execute request must be a JSON object"),
        (b'{"inputs": []}', "'inputs' must be a JSON object of input values by id"),
        (
            b'{"inputs": {"values": {"href": "http://169.254.169.254/"}}}',
            "input 'values' is a reference (href): this gateway takes values only",
        ),
        (
            b'{"inputs": {}, "response": "stream"}',
            "'response' must be 'raw' or 'document', got 'stream'",
        ),
        (
            b'{"inputs": {}, "outputs": {"other": {}}}',
            "unknown output 'other': the only output is 'result'",
        ),
    ],
)
async def test_bad_execute_requests(
    ogc: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await ogc.post(
        f"/ogc/processes/{GEO_TOPIC}.histogram/execution",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["detail"].startswith(message)


async def test_sync_validation_error(ogc: httpx.AsyncClient) -> None:
    response = await ogc.post(
        f"/ogc/processes/{GEO_TOPIC}.stations/execution",
        json={"inputs": {"min_elevation": "high"}},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["stations", "min_elevation"]


async def _wait_finished(ogc: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(int(timeout(120) / 0.1)):
        status = (await ogc.get(f"/ogc/jobs/{job_id}")).json()
        if status["status"] in ("successful", "failed", "dismissed"):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


async def test_async_job_with_progress_and_sse(ogc: httpx.AsyncClient) -> None:
    from ogc_api_processes_client.models import JobList, StatusInfo

    response = await ogc.post(
        f"/ogc/processes/{BIG_TOPIC}.slow_steps/execution",
        json={"inputs": {"steps": 4, "delay": 0.3}},
        headers={"Prefer": "respond-async"},
    )
    assert response.status_code == 201
    assert response.headers["preference-applied"] == "respond-async"
    created = response.json()
    StatusInfo.from_dict(created)
    job_id = created["jobID"]
    assert response.headers["location"].endswith(f"/ogc/jobs/{job_id}")
    assert created["status"] in ("accepted", "running")
    events = []
    async with ogc.stream(
        "GET", f"/ogc/jobs/{job_id}", headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        async for line in stream.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    for event in events:
        StatusInfo.from_dict(event)
    assert events[-1]["status"] == "successful"
    assert events[-1]["progress"] == 100
    progress = [e["progress"] for e in events if e["status"] == "running"]
    assert progress == sorted(progress)
    assert any(0 < p < 100 for p in progress), events
    assert any(e["message"].startswith("step ") for e in events), [
        (e["message"], e["progress"]) for e in events
    ]
    result = await ogc.get(f"/ogc/jobs/{job_id}/results")
    assert result.status_code == 200
    assert result.json() == 4
    listing = (await ogc.get("/ogc/jobs")).json()
    JobList.from_dict(listing)
    assert listing["jobs"][0]["jobID"] == job_id


async def test_async_netcdf_result_and_failure(ogc: httpx.AsyncClient) -> None:
    response = await ogc.post(
        f"/ogc/processes/{BIG_TOPIC}.make/execution",
        json={
            "inputs": {"megabytes": 2, "seed": 1},
            "outputs": {"result": {"format": {"mediaType": "application/x-netcdf"}}},
        },
        headers={"Prefer": "respond-async"},
    )
    job_id = response.json()["jobID"]
    status = await _wait_finished(ogc, job_id)
    assert status["status"] == "successful"
    result = await ogc.get(f"/ogc/jobs/{job_id}/results")
    assert result.headers["content-type"] == "application/x-netcdf; xarray=Dataset"
    got = xr.load_dataset(io.BytesIO(result.content))
    assert got["v"].shape == (500, 1000)
    bad = await ogc.post(
        f"/ogc/processes/{BIG_TOPIC}.make/execution",
        json={"inputs": {"megabytes": "lots"}},
        headers={"Prefer": "respond-async"},
    )
    bad_id = bad.json()["jobID"]
    status = await _wait_finished(ogc, bad_id)
    assert status["status"] == "failed"
    failed = await ogc.get(f"/ogc/jobs/{bad_id}/results")
    assert failed.status_code == 422
    assert failed.json()["type"].endswith("/job-failed")
    assert failed.json()["errors"][0]["loc"] == ["make", "megabytes"]


async def test_result_not_ready_dismiss_and_unknown_job(ogc: httpx.AsyncClient) -> None:
    response = await ogc.post(
        f"/ogc/processes/{BIG_TOPIC}.slow_steps/execution",
        json={"inputs": {"steps": 50, "delay": 0.2}},
        headers={"Prefer": "respond-async"},
    )
    job_id = response.json()["jobID"]
    early = await ogc.get(f"/ogc/jobs/{job_id}/results")
    assert early.status_code == 404
    assert early.json()["type"].endswith("/result-not-ready")
    dismissed = await ogc.delete(f"/ogc/jobs/{job_id}")
    assert dismissed.status_code == 200
    assert dismissed.json()["status"] == "dismissed"
    gone = await ogc.get(f"/ogc/jobs/{job_id}")
    assert gone.status_code == 404
    assert gone.json()["type"].endswith("/no-such-job")
    assert (await ogc.get("/ogc/jobs/../../etc")).status_code == 404


async def test_retention_keeps_the_newest_finished_jobs(ogc: httpx.AsyncClient) -> None:
    ids = []
    for i in range(5):
        response = await ogc.post(
            f"/ogc/processes/{GEO_TOPIC}.histogram/execution",
            json={"inputs": {"values": [i], "bins": 1}},
            headers={"Prefer": "respond-async"},
        )
        ids.append(response.json()["jobID"])
        await _wait_finished(ogc, ids[-1])
    listing = (await ogc.get("/ogc/jobs")).json()["jobs"]
    assert [j["jobID"] for j in listing] == ids[::-1][:3]


def test_jobs_survive_in_sqlite_and_interrupted_ones_fail(tmp_path: Any) -> None:
    from dasf_geo.gateway.jobs import JobStore

    store = JobStore(tmp_path / "jobs.db", retention=10)
    store.create("a", "t.f", "raw")
    store.create("b", "t.f", "raw")
    store.update("b", status="successful", progress=100)
    store.close()
    again = JobStore(tmp_path / "jobs.db", retention=10)
    a = again.get("a")
    b = again.get("b")
    assert a is not None and b is not None
    assert a.status == "failed"
    assert a.error_info == {
        "status": 502,
        "detail": "the gateway stopped while the job ran",
    }
    assert b.status == "successful"
    again.close()
