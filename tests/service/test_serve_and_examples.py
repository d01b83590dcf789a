"""Services as processes: ``dasf-geo serve`` (versions, shadows) and the examples."""

from __future__ import annotations

import ast
import re
import sys
import textwrap
import time

import pytest

import dasf_geo
from tests.conftest import EXAMPLES, free_port, timeout
from tests.e2e.conftest import Proc, wait_until
from tests.service.test_running import TopicReader

SERVICE = textwrap.dedent('''
    from dasf_geo import service

    service.add_parameter("factor", 2.0)


    @service.entrypoint
    def predict(x: float) -> dict:
        """Scale x by the factor parameter."""
        return {"version": service.version, "y": x * service.get_parameter("factor")}


    service.run()  # at module level, as many daeploy scripts do
    ''')


def dasf_geo_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dasf_geo.cli.tool", *args]


@pytest.fixture
def service_file(tmp_path):
    path = tmp_path / "predictor.py"
    path.write_text(SERVICE)
    return path


def served(proc: Proc, what: str) -> None:
    wait_until(lambda: "serving 'predictor'" in proc.output(), what, 60, proc)


def test_serve_a_version_and_a_shadow(broker, service_file):
    main = Proc(
        dasf_geo_cli(
            "serve", str(service_file), "--broker", broker.url, "--version", "1.0.0"
        )
    ).start()
    shadow = Proc(
        dasf_geo_cli(
            "serve", str(service_file), "--broker", broker.url,
            "--version", "1.1.0", "--shadow",
        )
    ).start()  # fmt: skip
    try:
        served(main, "the main version")
        served(shadow, "the shadow version")
        assert "'predictor' shadow version 1.1.0" in shadow.output()
        with dasf_geo.connect("predictor", broker.url, timeout=timeout(30)) as c:
            replies = [c.predict(x=float(i)) for i in range(4)]
        assert replies == [{"version": "1.0.0", "y": 2.0 * i} for i in range(4)]
        with dasf_geo.connect("predictor_1-1-0", broker.url, timeout=timeout(30)) as s:

            def recorded():
                rows = s._client.call(
                    {"func_name": "~monitor", "variables": ["predict"]}
                )
                return rows if len(rows) == 4 else None

            rows = wait_until(recorded, "the shadow's records", 30, shadow)
        assert [r["value"]["result"] for r in rows] == [
            {"version": "1.1.0", "y": 2.0 * i} for i in range(4)
        ]
    finally:
        assert main.stop() == 0, main.output()
        assert shadow.stop() == 0, shadow.output()


def test_serve_without_a_broker_starts_one(service_file):
    port = free_port()
    proc = Proc(dasf_geo_cli("serve", str(service_file), "--port", str(port))).start()
    try:
        served(proc, "the service")
        assert f"embedded broker listening on ws://127.0.0.1:{port}" in proc.output()
        with dasf_geo.connect(
            "predictor", f"ws://127.0.0.1:{port}", timeout=timeout(30)
        ) as c:
            c.parameters["factor"] = 10.0
            assert c.predict(x=1.5) == {"version": "0.0.0", "y": 15.0}
    finally:
        assert proc.stop() == 0, proc.output()


def test_version_and_shadow_need_a_service_module(tmp_path):
    plain = tmp_path / "plain.py"
    plain.write_text("__all__ = ['f']\n\ndef f() -> int:\n    return 1\n")
    proc = Proc(dasf_geo_cli("serve", str(plain), "--shadow")).start()
    proc.popen.wait(timeout(60))
    assert proc.popen.returncode == 1
    assert proc.output().strip() == (
        f"error: --version and --shadow need a module written with dasf_geo.service "
        f"(@service.entrypoint); {plain} has no entrypoints"
    )


# --- the examples ----------------------------------------------------------------

DAEPLOY_IMPORTS = {
    "daeploy": "dasf_geo",
    "daeploy.communication": "dasf_geo.service.communication",
    "daeploy.utilities": "dasf_geo.service.utilities",
    "daeploy.data_types": "dasf_geo.service.data_types",
}


def test_daeploy_example_changes_only_imports():
    tree = ast.parse((EXAMPLES / "daeploy_service.py").read_text())
    imported = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("dasf_geo")
    }
    assert imported <= set(DAEPLOY_IMPORTS.values())


def test_daeploy_example_runs_with_an_embedded_broker():
    proc = Proc([sys.executable, str(EXAMPLES / "daeploy_service.py")]).start()
    reader = None
    try:
        url = wait_until(
            lambda: re.search(
                r"embedded broker listening on (ws://\S+)", proc.output()
            ),
            "the embedded broker",
            60,
            proc,
        ).group(1)
        reader = TopicReader(url)
        wait_until(
            lambda: "serving 'daeploy_service'" in proc.output(), "serving", 60, proc
        )
        with dasf_geo.connect("daeploy_service", url, timeout=timeout(30)) as c:
            assert c.hello(name="World") == "Hello World"
            c.parameters["greeting_phrase"] = "Hi"
            assert c.hello(name="World") == "Hi World"
            scaled = c.scale(array=[[1, 2], [3, 4]], factor=0.5)
            assert scaled.tolist() == [[0.5, 1.0], [1.5, 2.0]]  # decoded
            raw = c._client.call(
                {"func_name": "scale", "array": [[1, 2]], "factor": 1.0}
            )
            assert raw == [[1.0, 2.0]]  # on the wire: nested lists, as daeploy

            def stored():
                rows = c._client.call({"func_name": "~monitor"})
                names = {r["variable"] for r in rows}
                return rows if {"counter", "last_greeting", "scale"} <= names else None

            rows = wait_until(stored, "stored values", 60, proc)
        greetings = [r["value"] for r in rows if r["variable"] == "last_greeting"]
        assert greetings[0] in ("Hello myself", "Hi myself")  # via call_service
        note = reader.wait_for(1)[0]
        assert note["msg"] == "The counter reached 3"
        assert note["severity"] == "WARNING"
        assert note["service"] == "daeploy_service"
    finally:
        if reader is not None:
            reader.close()
        assert proc.stop() == 0, proc.output()


def test_monitoring_example(broker):
    proc = Proc(
        [sys.executable, str(EXAMPLES / "monitoring_service.py")],
        env={"MONITORING_INTERVAL": "0.2", "DASF_GEO_BROKER_URL": broker.url},
    ).start()
    reader = TopicReader(broker.url)
    try:
        wait_until(
            lambda: "serving 'monitoring_service'" in proc.output(), "serving", 60, proc
        )
        with dasf_geo.connect(
            "monitoring_service", broker.url, timeout=timeout(30)
        ) as c:
            assert (
                c.api_info["service"]["entrypoints"]["latest_field"]["method"] == "GET"
            )
            mean = wait_until(_latest_mean(c), "a regional mean", 30, proc)
            assert 200.0 < mean < 320.0
            ds = c.latest_field()
            assert ds.sizes["time"] == 1
            assert ds.attrs["crs"] == "EPSG:4326"  # checked Demap-ready on the way
            # move the threshold so that the next months cross it
            means = [
                r["value"]
                for r in c._client.call(
                    {"func_name": "~monitor", "variables": ["regional_mean"]}
                )
            ]
            c.parameters["threshold"] = (
                (min(means) + max(means)) / 2 if len(set(means)) > 1 else mean
            )
            note = reader.wait_for(1)[0]
        assert note["service"] == "monitoring_service"
        assert re.fullmatch(
            r"The regional mean \d+\.\d\d K of \d{4}-\d\d-\d\d is (above|below) the "
            r"threshold of \d+(\.\d+)? K",
            note["msg"],
        ), note["msg"]
    finally:
        reader.close()
        assert proc.stop() == 0, proc.output()


def _latest_mean(c):
    def check():
        try:
            return c.latest_mean()
        except dasf_geo.DasfGeoError:
            time.sleep(0.1)
            return None

    return check
