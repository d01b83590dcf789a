"""TypeScript stubs: generated from a module and from a running service,
compiled with ``tsc --strict --noEmit``, and run in Node against
``examples/geo_service.py`` (the Dataset replies read with netcdfjs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from tests.conftest import REPO_ROOT, timeout
from tests.web.conftest import Served, node_bin

EXAMPLES = REPO_ROOT / "examples"
SAMPLE = REPO_ROOT / "sample_data" / "gridded_temperature.nc"
TSC_ARGS = [
    "--strict",
    "--noEmit",
    "--target",
    "es2022",
    "--lib",
    "es2022,dom",
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
    "--noUncheckedIndexedAccess",
]

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None, reason="node is not installed"
)


def _generate(module: str, *extra: str) -> str:
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / module),
            "generate",
            "--lang",
            "typescript",
            *extra,
        ],
        capture_output=True,
        timeout=timeout(60),
        check=False,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def test_generated_stub_has_a_typed_method_per_function() -> None:
    code = _generate("geo_service.py")
    for line in (
        "export class GeoService {",
        "async get_data(options: CallOptions = {}): Promise<GetDataResult>",
        "async stations(args: StationsArgs = {}, options: CallOptions = {}): "
        "Promise<StationsResult>",
        "async time_series(args: TimeSeriesArgs, options: CallOptions = {}): "
        "Promise<TimeSeriesResult>",
        "export type GetDataResult = NetcdfResult",
        "export class DasfClient {",
        'export const TOPIC = "geo_service";',
    ):
        assert line in code
    assert "lat: number" in code and "min_elevation?: number" in code


@pytest.mark.parametrize(
    "module", ["geo_service.py", "hello_world_class.py", "hello_world.py"]
)
def test_generated_stubs_compile_strictly(
    module: str, node_modules: Path, tmp_path: Path
) -> None:
    (tmp_path / "client.ts").write_text(_generate(module))
    proc = subprocess.run(
        [node_bin(node_modules, "tsc"), *TSC_ARGS, "client.ts"],
        cwd=tmp_path,
        capture_output=True,
        timeout=timeout(120),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_dashboard_sources_compile_strictly(node_modules: Path, tmp_path: Path) -> None:
    # a copy of web/ next to the cached packages (tsc resolves them from there)
    shutil.copytree(REPO_ROOT / "web" / "src", tmp_path / "src")
    shutil.copy(REPO_ROOT / "web" / "tsconfig.json", tmp_path / "tsconfig.json")
    (tmp_path / "node_modules").symlink_to(node_modules / "node_modules")
    proc = subprocess.run(
        [node_bin(node_modules, "tsc"), "--noEmit", "-p", "tsconfig.json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=timeout(180),
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_stub_from_a_running_service_matches_the_module_stub(
    geo_service: Served,
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "generate",
            "--lang",
            "typescript",
            "geo_service",
            "--broker",
            geo_service.broker,
        ],
        capture_output=True,
        timeout=timeout(60),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode() == _generate("geo_service.py")


def test_stub_from_a_topic_nobody_serves_names_the_topic(geo_service: Served) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "generate",
            "--lang",
            "typescript",
            "nobody_here",
            "--broker",
            geo_service.broker,
            "--timeout",
            "1",
        ],
        capture_output=True,
        timeout=timeout(60),
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (
        "error: no reply from topic 'nobody_here' to api_info within 1 s"
    )


def _run_node(
    script: str,
    node_modules: Path,
    tmp_path: Path,
    env: dict[str, str],
    served: Served | None = None,
) -> dict[str, Any]:
    """Bundle ``tests/web/node/<script>`` with esbuild, run it with node and
    ``env``, return the JSON of its last line (a failure shows the end of
    ``served``'s output too)."""
    shutil.copy(Path(__file__).parent / "node" / script, tmp_path / script)
    bundle = tmp_path / (Path(script).stem + ".mjs")
    build = subprocess.run(
        [
            node_bin(node_modules, "esbuild"),
            script,
            "--bundle",
            "--platform=node",
            "--format=esm",
            "--target=node20",
            f"--outfile={bundle}",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=timeout(120),
        check=False,
        env={**os.environ, "NODE_PATH": str(node_modules / "node_modules")},
    )
    assert build.returncode == 0, build.stderr.decode()
    run = subprocess.run(
        ["node", "--experimental-websocket", "--no-warnings", str(bundle)],
        capture_output=True,
        timeout=timeout(120),
        check=False,
        env={**os.environ, **env},
    )
    tail = served.proc.output()[-2000:] if served is not None else ""
    assert run.returncode == 0, run.stderr.decode() + tail
    return json.loads(run.stdout.decode().strip().splitlines()[-1])


def test_node_calls_the_service_and_reads_datasets_with_netcdfjs(
    geo_service: Served, node_modules: Path, tmp_path: Path
) -> None:
    (tmp_path / "client.ts").write_text(_generate("geo_service.py"))
    out = _run_node(
        "client_test.ts",
        node_modules,
        tmp_path,
        {"BROKER": geo_service.broker, "SAMPLE_NC": str(SAMPLE)},
        geo_service,
    )
    expected = xr.load_dataset(SAMPLE)
    assert "parts" in out["features"]
    assert out["mediaTypes"][0] == "application/x-netcdf; xarray=Dataset"
    assert out["dims"] == [{"name": n, "size": s} for n, s in expected.sizes.items()]
    assert out["crs"] == "EPSG:4326"
    assert out["tasLength"] == expected["tas"].size
    np.testing.assert_allclose(
        out["tasFirst"], expected["tas"].values.ravel()[:3], rtol=1e-6
    )
    assert out["frameFormat"] == "dasf-frame/1"
    assert "tas_anomaly" in out["anomalyVars"] and "time" in out["anomalyVars"]
    assert abs(out["anomalyMean"]) < 1e-3
    # the reply came in several fragments (4096 characters each)
    assert out["transferSteps"] > 5
    assert out["mediaTypes"][-1] == "application/x-netcdf; xarray=DataArray"
    assert out["error"]["locs"] == [["time_series", "lat"]]
    assert "lat" in out["error"]["message"]


def test_the_vendored_bundle_is_built_from_the_sources(
    node_modules: Path, tmp_path: Path
) -> None:
    web = tmp_path / "web"
    shutil.copytree(
        REPO_ROOT / "web", web, ignore=shutil.ignore_patterns("node_modules")
    )
    (web / "node_modules").symlink_to(node_modules / "node_modules")
    out = tmp_path / "out"
    proc = subprocess.run(
        ["node", "build.mjs"],
        cwd=web,
        capture_output=True,
        timeout=timeout(180),
        check=False,
        env={**os.environ, "DASF_GEO_WEB_OUT": str(out)},
    )
    assert proc.returncode == 0, proc.stderr.decode()
    committed = REPO_ROOT / "dasf_geo" / "web"
    built = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert built == sorted(
        p.relative_to(committed)
        for p in committed.rglob("*")
        if p.is_file()
        and p.parent.name in ("static", "ts", "tools")
        and p.name != "stub_prelude.ts"
    )
    stale = [
        str(p) for p in built if (out / p).read_bytes() != (committed / p).read_bytes()
    ]
    assert stale == [], "rebuild with `cd web && npm ci && npm run build`"


def test_node_client_keys_fragments_and_ends_an_abandoned_upload(
    node_modules: Path, tmp_path: Path
) -> None:
    shutil.copy(
        REPO_ROOT / "dasf_geo" / "web" / "ts" / "dasf_client.ts",
        tmp_path / "dasf_client.ts",
    )
    out = _run_node("upload_test.ts", node_modules, tmp_path, {})
    whole = out["whole"]
    count = whole[0]["props"]["num_fragments"]
    assert count == len(whole) > 5  # 40,000 bytes in pieces of 4,096 characters
    transfer = whole[0]["props"]["dasfGeoTransfer"]
    assert all(f["key"] == transfer for f in whole)
    assert not any("dasfGeoAbort" in f["props"] for f in whole)
    assert "no reply" in out["wholeError"]

    cancelled = out["cancelled"]
    marker = cancelled[-1]
    fragments = cancelled[:-1]
    assert 3 <= len(fragments) < count  # stopped soon after the third
    assert [f["props"]["fragment"] for f in fragments] == list(range(len(fragments)))
    transfer = fragments[0]["props"]["dasfGeoTransfer"]
    assert marker["size"] == 0
    assert marker["key"] == transfer
    props = marker["props"]
    assert props["dasfGeoAbort"] == "the sending was cancelled"
    assert (props["fragment"], props["num_fragments"]) == (0, count)
    assert props["dasfGeoTransfer"] == transfer
    assert props["dasfGeoSize"] == 40000
    # the request's own properties travel with it, as on every fragment
    assert props["requestContext"] == fragments[0]["props"]["requestContext"]
    assert "AbortError" in out["cancelError"]  # the signal's reason


def test_node_calls_work_with_two_backends_on_the_topic(
    geo_service: Served, node_modules: Path, tmp_path: Path
) -> None:
    """Fragmented uploads from the TypeScript client reach one backend each,
    with a second backend sharing the topic (the fragments are keyed)."""
    from tests.web.conftest import serve

    second = serve(EXAMPLES / "geo_service.py", broker=geo_service.broker)
    try:
        (tmp_path / "client.ts").write_text(_generate("geo_service.py"))
        out = _run_node(
            "client_test.ts",
            node_modules,
            tmp_path,
            {"BROKER": geo_service.broker, "SAMPLE_NC": str(SAMPLE)},
            geo_service,
        )
    finally:
        second.proc.stop()
    assert "tas_anomaly" in out["anomalyVars"]
    assert out["transferSteps"] > 5
