"""Serve a module and call it the three ways a user does, through real processes."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import time

import pytest

import dasf_geo
from dasf_geo.exceptions import RemoteValidationError, RequestTimeout
from dasf_geo.transport.client import AsyncClient
from tests.conftest import free_port, timeout
from tests.e2e.conftest import (
    MODULES,
    backend,
    consumers_on,
    dasf_geo_serve,
    pulsar_config,
    start_backend,
    wait_until,
)

pytestmark = pytest.mark.e2e

SERVICE = MODULES / "e2e_service.py"
DASF_GEO = [sys.executable, "-m", "dasf_geo.cli.tool"]


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DASF_GEO, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout(60),
    )


@pytest.fixture
def served():
    """``dasf-geo serve`` on the e2e module with its embedded broker."""
    with dasf_geo_serve(SERVICE, "e2e-serve") as served:
        yield served


def test_serve_prints_broker_and_call_command(served):
    url, proc = served
    out = proc.output()
    assert f"embedded broker listening on {url}" in out
    assert f"--broker {url}" in out
    assert "serving e2e_service on topic 'e2e-serve'" in out


def test_call_cli_returns_documented_results(served):
    url, _ = served
    result = run_cli("call", "e2e-serve", "hello_world", "--broker", url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == "HelloWorld"
    result = run_cli(
        "call",
        "e2e-serve",
        "HelloWorld.repeat_message",
        "message=hi",
        "repeat=3",
        "--broker",
        url,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["hi", "hi", "hi"]
    result = run_cli(
        "call",
        "e2e-serve",
        "echo",
        "--json",
        "-",
        "tag=cli",
        "--broker",
        url,
        stdin='{"value": 7, "tag": "file"}',
    )
    assert json.loads(result.stdout) == {"value": 7, "tag": "cli"}


def test_call_cli_bad_input_names_the_problem(served):
    url, _ = served
    result = run_cli(
        "call",
        "e2e-serve",
        "HelloWorld.repeat_message",
        "message=hi",
        "repeat=-1",
        "--broker",
        url,
    )
    assert result.returncode == 1
    assert "repeat: Input should be greater than or equal to 0" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli("call", "e2e-serve", "nope", "--broker", url)
    assert result.returncode == 1
    assert "has no function or class 'nope'" in result.stderr
    assert "hello_world" in result.stderr
    result = run_cli("call", "e2e-serve", "echo", "value", "--broker", url)
    assert result.returncode == 2
    assert "arguments must look like name=value" in result.stderr
    result = run_cli("call", "e2e-serve", "echo", "--broker", url)
    assert result.returncode == 1
    assert "missing a required argument: 'value'" in result.stderr
    result = run_cli("call", "e2e-serve", "echo", "--broker", "http://x")
    assert result.returncode == 1
    assert "broker must look like ws://HOST:PORT" in result.stderr
    port = free_port()
    result = run_cli("call", "e2e-serve", "echo", "--broker", f"ws://127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


def test_call_cli_transfer_options(served):
    url, _ = served
    value = "v" * 5000
    args = ("call", "e2e-serve", "echo", "value=1", f"tag={value}", "--broker", url)
    result = run_cli(*args, "--fragment-size", "1024", "--compression", "4")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"value": 1, "tag": value}
    result = run_cli(*args, "--max-size", "1kB")
    assert result.returncode == 1
    assert result.stderr == (
        "error: the request to echo() for topic 'e2e-serve' is 5,044 bytes, above "
        "the limit of 1,000 bytes (max_size); it was not sent\n"
    )
    assert "Traceback" not in result.stderr
    for option, text, message in [
        ("--max-size", "lots", "'lots' is not a size"),
        ("--compression", "12", "must be a zlib level 1-9, got 12"),
        ("--fragment-size", "100", "must be an integer of at least 1024"),
    ]:
        result = run_cli(*args, option, text)
        assert result.returncode == 2
        assert f"argument {option}: {message}" in result.stderr


def test_dynamic_client(served):
    url, _ = served
    with dasf_geo.connect("e2e-serve", url, timeout=timeout(30)) as svc:
        assert svc.hello_world() == "HelloWorld"
        assert svc.echo(3, tag="t") == {"value": 3, "tag": "t"}
        assert list(inspect.signature(svc.echo).parameters) == ["value", "tag"]
        assert inspect.signature(svc.echo).parameters["tag"].default == ""
        assert "Return the value and tag" in svc.echo.__doc__
        hello = svc.HelloWorld(message="hi")
        assert hello.repeat_message(repeat=2) == ["hi", "hi"]
        greeting = hello.greet(repeat=1, greet_message="moin")
        assert greeting == {"message": "hi", "greetings": ["moin"]}
        assert svc.HelloWorld.methods == ["repeat_message", "greet"]
        with pytest.raises(RemoteValidationError) as info:
            hello.repeat_message(repeat=-1)
        assert info.value.errors[0]["type"] == "greater_than_equal"
        with pytest.raises(TypeError, match="missing a required argument"):
            svc.echo()
        with pytest.raises(AttributeError, match="unexposed_method"):
            hello.unexposed_method()


def test_progress_reports_reach_the_caller(served):
    url, _ = served
    events: list[dict] = []
    with dasf_geo.connect("e2e-serve", url, progress=events.append) as svc:
        assert "reporter" not in inspect.signature(svc.steps).parameters
        assert svc.steps(2) == 2
        assert svc.steps(1) == 1  # a fresh report per call
    reports = [e["report"] for e in events if e["kind"] == "report"]
    assert [r["status"] for r in reports] == ["running"] * 5 + ["success"] + [
        "running"
    ] * 3 + ["success"]
    assert [c["step_message"] for c in reports[5]["children"]] == ["step 0", "step 1"]
    assert len(reports[-1]["children"]) == 1


def test_five_mb_result_and_argument(served):
    url, _ = served
    n = 5 * 1024 * 1024
    with dasf_geo.connect("e2e-serve", url, timeout=timeout(60)) as svc:
        assert svc.blob(n) == "x" * n
        assert svc.size("y" * n) == n


def test_generated_stub(served, tmp_path):
    url, _ = served
    port = url.rsplit(":", 1)[1]
    generated = subprocess.run(
        [
            sys.executable,
            str(SERVICE),
            "-t",
            "e2e-serve",
            "-H",
            "127.0.0.1",
            "-p",
            port,
            "generate",
        ],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=tmp_path,
    )
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "e2e_client.py").write_text(generated.stdout)
    code = (
        "import json, e2e_client\n"
        "print(json.dumps([e2e_client.hello_world(),\n"
        "    e2e_client.HelloWorld('hi').repeat_message(2)]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout(60),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        "HelloWorld",
        ["hi", "hi"],
    ]


def test_two_backends_share_one_topic(broker_process, tmp_path):
    """Two ``listen`` processes on one topic: every request runs exactly once."""
    topic = "e2e-shared"
    record = tmp_path / "executed.txt"
    env = {"E2E_RECORD": str(record)}
    one = start_backend(SERVICE, topic, broker_process, env=env)
    two = start_backend(SERVICE, topic, broker_process, env=env)
    try:
        # a ping may be answered by the first; wait for both subscriptions
        wait_until(
            lambda: consumers_on(broker_process, topic) == 2, "two consumers", 30
        )
        config = pulsar_config(topic, broker_process.url)

        async def calls() -> list[int]:
            async with AsyncClient(config, timeout=timeout(30)) as client:
                return await asyncio.gather(
                    *(
                        client.call({"func_name": "record", "token": f"t{i}"})
                        for i in range(200)
                    )
                )

        pids = asyncio.run(calls())
    finally:
        one.stop()
        two.stop()
    assert set(pids) == {one.popen.pid, two.popen.pid}
    lines = record.read_text().split()
    tokens = lines[::2]
    assert sorted(tokens) == sorted(f"t{i}" for i in range(200))


@pytest.mark.slow
def test_ten_thousand_calls_from_sixteen_callers(broker_process):
    topic = "e2e-load"
    with backend(SERVICE, topic, broker_process, "--max-workers", "4"):
        config = pulsar_config(topic, broker_process.url)

        async def caller(index: int) -> None:
            async with AsyncClient(config, timeout=timeout(60)) as client:
                sem = asyncio.Semaphore(8)

                async def one(i: int) -> None:
                    async with sem:
                        reply = await client.call(
                            {"func_name": "echo", "value": i, "tag": f"c{index}"}
                        )
                    assert reply == {"value": i, "tag": f"c{index}"}

                await asyncio.gather(*(one(i) for i in range(625)))

        async def main() -> None:
            await asyncio.gather(*(caller(i) for i in range(16)))

        asyncio.run(main())


def test_backend_killed_mid_request_gives_timeout(broker_process):
    topic = "e2e-kill"
    proc = start_backend(SERVICE, topic, broker_process)
    try:
        config = pulsar_config(topic, broker_process.url)

        async def call() -> None:
            async with AsyncClient(config) as client:
                task = asyncio.create_task(
                    client.call({"func_name": "sleep", "seconds": 30}, timeout=3)
                )
                await asyncio.sleep(0.5)
                proc.kill()
                start = time.monotonic()
                with pytest.raises(RequestTimeout, match="sleep\\(\\) within 3 s"):
                    await task
                assert time.monotonic() - start < timeout(10)

        asyncio.run(call())
    finally:
        proc.stop()


def test_missing_backend_module_file_is_reported():
    result = run_cli("serve", "no/such/module.py")
    assert result.returncode == 1
    assert "no such file: no/such/module.py" in result.stderr


def test_serve_module_that_fails_to_import(tmp_path):
    bad = tmp_path / "broken_module.py"
    bad.write_text("raise RuntimeError('boom at import')\n")
    result = run_cli("serve", str(bad), "--port", str(free_port()))
    assert result.returncode == 1
    assert "importing" in result.stderr and "boom at import" in result.stderr


def test_asyncio_dynamic_client(served):
    url, _ = served

    async def main() -> None:
        svc = await dasf_geo.aconnect("e2e-serve", url, timeout=timeout(30))
        async with svc:
            assert await svc.ping() >= 0
            results = await asyncio.gather(*(svc.echo(i, tag="a") for i in range(20)))
            assert results == [{"value": i, "tag": "a"} for i in range(20)]
            assert await svc.HelloWorld(message="x").repeat_message(1) == ["x"]
            with pytest.raises(AttributeError, match="has no function or class"):
                svc.nothing  # noqa: B018

    asyncio.run(main())


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "expected seconds > 0, got '0'"), ("soon", "expected a number of seconds")],
)
def test_call_timeout_must_be_positive_seconds(value, message):
    result = run_cli("call", "t", "f", "--timeout", value)
    assert result.returncode == 2
    assert f"argument --timeout: {message}" in result.stderr
