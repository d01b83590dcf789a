"""Large Datasets through ``dasf-geo serve``'s embedded broker, bit for bit.

A 100 MB Dataset reply, a 1 GB dask-backed reply, a 100 MB Dataset argument
and a 1 GB dask-backed argument travel between ``dasf-geo serve`` on the
streaming benchmark's module and a caller process. The caller checks every
value (``benchmarks/_geo_caller.py`` exits non-zero otherwise); peak memory
is read from /proc: the serving process's by this test (it runs broker and
backend), the caller's by itself. The bounds are the streaming
targets: an in-memory 100 MB Dataset at most 2.5x the payload on
each side (plus the broker's 64 MB, which runs in the serving process), a
1 GB dask-backed one at most 300 MB on each side.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, timeout
from tests.e2e.conftest import dasf_geo_serve

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BENCH = REPO_ROOT / "benchmarks"
MB = 1_000_000


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture(scope="module")
def served():
    with dasf_geo_serve(BENCH / "bench_geo_service.py", "stream-e2e") as served:
        yield served


@pytest.mark.parametrize(
    ("mode", "nt", "serving_mb", "caller_mb"),
    [
        pytest.param("reply", 100, 250 + 64, 250, id="100MB-reply"),
        pytest.param("request", 100, 250 + 64, 250, id="100MB-argument"),
        pytest.param("lazy", 1000, 300 + 64, 300, id="1GB-dask-reply"),
        pytest.param("lazy-request", 1000, 300 + 64, 300, id="1GB-dask-argument"),
    ],
)
def test_large_datasets_arrive_intact_in_bounded_memory(
    served, mode, nt, serving_mb, caller_mb
):
    url, proc = served
    pid = proc.popen.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
    idle = status_kib(pid, "VmRSS")
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "_geo_caller.py"),
            url,
            "stream-e2e",
            mode,
            "500",
            "500",
            str(nt),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout(600),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    caller = json.loads(result.stdout.strip().splitlines()[-1])
    # in MB (10**6 bytes), the unit of the targets
    serving = (status_kib(pid, "VmHWM") - idle) * 1024 / MB
    calling = (caller["peak_kib"] - caller["idle_kib"]) * 1024 / MB
    print(f"{mode} {nt} MB: dasf-geo serve +{serving:.0f} MB, caller +{calling:.0f} MB")
    assert serving <= serving_mb, f"dasf-geo serve peaked at +{serving:.0f} MB"
    assert calling <= caller_mb, f"the caller peaked at +{calling:.0f} MB"
