"""Raw NetCDF both ways through a real gateway process, with bounded memory.

The gateway runs as ``dasf-geo gateway`` in its own process with its own
``TMPDIR``, so that its peak memory and its temporary files can be checked.
"""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr

from tests.conftest import SAMPLE_DATA, timeout
from tests.e2e.conftest import wait_until
from tests.gateway.conftest import (
    BIG_TOPIC,
    GEO_TOPIC,
    MODULES,
    GatewayProc,
    start_gateway_process,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

MB = 40  # above the 32 MiB spool threshold: reassembled on disk


@pytest.fixture
def gateway(
    broker: Any, big_backend: Any, geo_backend: Any, tmp_path: Any
) -> Iterator[GatewayProc]:
    gw = start_gateway_process(broker.url, tmp_path, "--body-limit", "200MB")
    try:
        yield gw
    finally:
        gw.proc.stop()


def _expected(megabytes: int, seed: int = 0) -> xr.Dataset:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "big_service", MODULES / "big_service.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(megabytes, seed)


def _warm_up(gateway: GatewayProc) -> int:
    """One small call of each kind; the resident size after it."""
    response = httpx.post(
        f"{gateway.url}/services/{BIG_TOPIC}/make",
        json={"megabytes": 1},
        headers={"Accept": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert response.status_code == 200
    response = httpx.post(
        f"{gateway.url}/services/{BIG_TOPIC}/total",
        content=response.content,
        headers={"Content-Type": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert response.status_code == 200
    return gateway.rss()


def test_gateway_does_not_import_xarray_to_pass_netcdf_on() -> None:
    import subprocess
    import sys

    code = (
        "import sys, dasf_geo.gateway.app, dasf_geo.gateway.negotiation, "
        "dasf_geo.transport.client; "
        "print([m for m in ('xarray', 'pandas', 'netCDF4') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_large_netcdf_result_streams(gateway: GatewayProc, tmp_path: Any) -> None:
    idle = _warm_up(gateway)
    out = tmp_path / "out.nc"
    with httpx.stream(
        "POST",
        f"{gateway.url}/services/{BIG_TOPIC}/make",
        json={"megabytes": MB, "seed": 3},
        headers={"Accept": "application/x-netcdf"},
        timeout=timeout(120),
    ) as response:
        assert response.status_code == 200
        assert (
            response.headers["content-type"] == "application/x-netcdf; xarray=Dataset"
        )
        assert response.headers["content-disposition"] == (
            'attachment; filename="make.nc"'
        )
        size = int(response.headers["content-length"])
        with open(out, "wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
    assert out.stat().st_size == size > MB * 1_000_000
    got = xr.load_dataset(out)
    expected = _expected(MB, 3)
    np.testing.assert_array_equal(got["v"].values, expected["v"].values)
    assert got["v"].attrs["long_name"] == "random"
    # never the whole payload in the gateway's memory
    assert gateway.peak_rss() - idle < size * 0.75
    assert gateway.temp_files() == []


def test_large_netcdf_upload_streams(gateway: GatewayProc, tmp_path: Any) -> None:
    expected = _expected(MB, 5)
    path = tmp_path / "in.nc"
    expected.to_netcdf(path)
    size = path.stat().st_size
    idle = _warm_up(gateway)

    def body() -> Iterator[bytes]:  # chunked: no Content-Length
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    response = httpx.post(
        f"{gateway.url}/services/{BIG_TOPIC}/total",
        content=body(),
        headers={"Content-Type": "application/x-netcdf"},
        timeout=timeout(120),
    )
    assert response.status_code == 200, response.text
    assert response.json() == pytest.approx(
        float(expected["v"].astype("float64").sum())
    )
    assert gateway.peak_rss() - idle < size * 0.75
    assert gateway.temp_files() == []


def test_multipart_upload_and_query_arguments(gateway: GatewayProc) -> None:
    nc = (SAMPLE_DATA / "gridded_temperature.nc").read_bytes()
    response = httpx.post(
        f"{gateway.url}/services/{GEO_TOPIC}/monthly_anomaly",
        files={"ds": ("temperature.nc", nc, "application/x-netcdf")},
        data={"variable": "tas"},
        headers={"Accept": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert response.status_code == 200, response.text
    got = xr.load_dataset(io.BytesIO(response.content))
    source = xr.load_dataset(SAMPLE_DATA / "gridded_temperature.nc")
    expected = source["tas"] - source["tas"].mean("time")
    np.testing.assert_allclose(got["tas_anomaly"].values, expected.values, rtol=1e-6)
    assert gateway.temp_files() == []


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (
            b"hello, not netcdf",
            415,
            "the upload for argument 'ds' is not NetCDF (it "
            "starts with b'hell', 17 bytes)",
        ),
        (
            b"",
            415,
            "the upload for argument 'ds' is not NetCDF (it starts with b'', 0 bytes)",
        ),
    ],
)
def test_upload_that_is_not_netcdf(
    gateway: GatewayProc, content: bytes, status: int, message: str
) -> None:
    for kwargs in (
        {"content": content, "headers": {"Content-Type": "application/x-netcdf"}},
        {"files": {"ds": ("x.nc", content)}},
    ):
        response = httpx.post(
            f"{gateway.url}/services/{GEO_TOPIC}/monthly_anomaly",
            timeout=timeout(60),
            **kwargs,  # type: ignore[arg-type]
        )
        assert response.status_code == status
        assert response.json()["detail"].startswith(message)
    assert gateway.temp_files() == []


def test_truncated_netcdf(gateway: GatewayProc) -> None:
    nc = (SAMPLE_DATA / "gridded_temperature.nc").read_bytes()
    response = httpx.post(
        f"{gateway.url}/services/{GEO_TOPIC}/monthly_anomaly",
        content=nc[: len(nc) // 2],
        headers={"Content-Type": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "ds" in detail and "truncated" in detail.lower(), detail
    ok = httpx.post(
        f"{gateway.url}/services/{GEO_TOPIC}/monthly_anomaly",
        content=nc,
        headers={"Content-Type": "application/x-netcdf"},
        timeout=timeout(60),
    )
    assert ok.status_code == 200
    assert gateway.temp_files() == []


def test_wrong_content_type_and_accept(gateway: GatewayProc) -> None:
    url = f"{gateway.url}/services/{GEO_TOPIC}/stations"
    response = httpx.post(
        url, content=b"a=1", headers={"Content-Type": "text/plain"}, timeout=30
    )
    assert response.status_code == 415
    assert response.json()["detail"] == (
        "unsupported Content-Type 'text/plain': send application/json, "
        "application/x-netcdf (one Dataset argument) or multipart/form-data"
    )
    response = httpx.post(
        url, content=b"CDF\x01", headers={"Content-Type": "application/x-netcdf"}
    )
    assert response.status_code == 415
    assert response.json()["detail"].startswith(
        "stations() takes 0 Dataset/DataArray arguments; a raw application/x-netcdf "
        "body needs exactly one"
    )
    response = httpx.post(url, json={}, headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["detail"] == (
        "the result of stations() can be sent as application/json, text/csv; "
        "Accept asked for 'image/png'"
    )


def test_csv_and_npy_results(gateway: GatewayProc) -> None:
    import pandas as pd

    response = httpx.post(
        f"{gateway.url}/services/{GEO_TOPIC}/stations",
        json={"min_elevation": 1000},
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    table = pd.read_csv(io.StringIO(response.text))
    source = pd.read_csv(SAMPLE_DATA / "stations.csv")
    expected = source[source["elevation"] >= 1000].reset_index(drop=True)
    assert table["station_id"].tolist() == expected["station_id"].tolist()
    assert table["elevation"].tolist() == pytest.approx(expected["elevation"].tolist())
    response = httpx.post(
        f"{gateway.url}/services/{GEO_TOPIC}/histogram",
        json={"values": [1, 2, 2, 3, 3, 3], "bins": 3},
        headers={"Accept": "application/x-npy"},
    )
    assert response.status_code == 200
    assert np.load(io.BytesIO(response.content)).tolist() == [1, 2, 3]


def test_body_above_the_limit(broker: Any, geo_backend: Any, tmp_path: Any) -> None:
    gw = start_gateway_process(broker.url, tmp_path, "--body-limit", "100000")
    try:
        url = f"{gw.url}/services/{GEO_TOPIC}/monthly_anomaly"
        big = b"CDF\x01" + bytes(200_000)
        response = httpx.post(
            url, content=big, headers={"Content-Type": "application/x-netcdf"}
        )
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "the request body is 200,004 bytes (200 kB), above the gateway's limit "
            "of 100,000 bytes (100 kB); send less data or raise the limit "
            "(--body-limit)"
        )

        def chunks() -> Iterator[bytes]:
            for _ in range(4):
                yield bytes(50_000)

        response = httpx.post(
            url, content=chunks(), headers={"Content-Type": "application/x-netcdf"}
        )
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "the request body is more than 100,000 bytes (100 kB), the gateway's "
            "limit; send less data or raise the limit (--body-limit)"
        )
        ok = httpx.post(f"{gw.url}/services/{GEO_TOPIC}/stations", json={})
        assert ok.status_code == 200
        assert gw.temp_files() == []
    finally:
        gw.proc.stop()


def test_client_disconnects_mid_upload_and_mid_download(gateway: GatewayProc) -> None:
    # mid-upload: announce 50 MB, send 5 MB, hang up
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            (
                f"POST /services/{BIG_TOPIC}/total HTTP/1.1\r\nHost: x\r\n"
                "Content-Type: application/x-netcdf\r\n"
                "Content-Length: 50000000\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"CDF\x01" + bytes(5_000_000))
    # mid-download: read 1 MB of a 40 MB result, hang up
    with httpx.stream(
        "POST",
        f"{gateway.url}/services/{BIG_TOPIC}/make",
        json={"megabytes": MB},
        headers={"Accept": "application/x-netcdf"},
        timeout=timeout(120),
    ) as response:
        assert response.status_code == 200
        next(response.iter_bytes(1 << 20))
    wait_until(lambda: gateway.temp_files() == [], "temporary files removed", 30)
    ok = httpx.post(f"{gateway.url}/services/{GEO_TOPIC}/stations", json={})
    assert ok.status_code == 200


def test_slow_client_does_not_block_others(gateway: GatewayProc) -> None:
    """Requests are served while another client's upload is held mid-way.

    The slow upload sends its first pieces and then stops until the other
    requests are answered, so they are answered while it is unfinished
    (by construction, at any machine speed). A gateway that waited for
    the slow upload before serving others would leave them unanswered
    while the upload waits for them: the test fails after ``timeout(60)``
    instead of hanging.
    """
    nc = (SAMPLE_DATA / "gridded_temperature.nc").read_bytes()
    piece = 4096
    assert len(nc) > 2 * piece  # the upload is held with bytes still to send
    uploading = threading.Event()  # the gateway is receiving the upload
    others_done = threading.Event()  # release the rest of the upload
    result: list[int] = []

    def slow_upload() -> None:
        def trickle() -> Iterator[bytes]:
            for start in range(0, len(nc), piece):
                yield nc[start : start + piece]
                # asked for the next piece: the first ones went out
                uploading.set()
                if start >= piece:
                    others_done.wait(timeout(120))

        response = httpx.post(
            f"{gateway.url}/services/{GEO_TOPIC}/monthly_anomaly",
            content=trickle(),
            headers={"Content-Type": "application/x-netcdf"},
            timeout=timeout(180),
        )
        result.append(response.status_code)

    served: list[int] = []

    def others() -> None:
        for _ in range(3):
            ok = httpx.post(
                f"{gateway.url}/services/{GEO_TOPIC}/stations",
                json={},
                timeout=timeout(120),
            )
            served.append(ok.status_code)

    thread = threading.Thread(target=slow_upload)
    thread.start()
    try:
        assert uploading.wait(timeout(60)), "the slow upload did not start"
        other = threading.Thread(target=others)
        other.start()
        other.join(timeout(60))
        # answered while the upload was held (it waits for others_done)
        assert served == [200, 200, 200], (
            f"answers {served} to 3 requests while a slow upload was "
            "unfinished: the slow client blocks the others"
        )
        assert result == []  # the slow upload is unfinished still
    finally:
        others_done.set()
        thread.join(timeout(60))
    assert result == [200]
