"""Every example in examples/ runs: its schema, its client and its results.

The DASF documentation's listings (hello_world function, HelloWorld class,
configured class, registered GreetResponse) are run as scripts, exactly as a
user would: ``python examples/<name>.py schema`` and ``generate``. Their
documented results are checked in process with the ``compute`` command, and
one example is served through an embedded broker end to end.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import pytest

from tests.conftest import REPO_ROOT, timeout

EXAMPLES = REPO_ROOT / "examples"

# example -> (topic, model names expected in the schema's $defs)
DOC_EXAMPLES = {
    "hello_world": ("hello-world-topic", {"FuncHelloWorld"}),
    "hello_world_class": (
        "hello-world-class-topic",
        {"ClassHelloWorld", "MethClassHelloWorldRepeatMessage"},
    ),
    "hello_world_configured": (
        "hello-world-class-topic",
        {"ClassHelloWorld", "MethClassHelloWorldRepeatMessage"},
    ),
    "greet_response": (
        "hello-world-topic",
        {
            "ClassHelloWorld",
            "MethClassHelloWorldRepeatMessage",
            "MethClassHelloWorldGreet",
        },
    ),
}


def script(name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=timeout(60),
        check=check,
    )


def load_example(name: str):
    """Import an example file as the module ``dasf_geo_example_<name>``."""
    module_name = f"dasf_geo_example_{name}"
    if module_name in sys.modules:
        return module_name
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module_name


def compute(capsys, name: str, request: dict) -> str:
    """Run ``compute`` on the example in process; return what it printed."""
    from dasf_geo import main

    topic = DOC_EXAMPLES[name][0]
    argv = ["example.py", "-t", topic, "--log-level", "ERROR", "compute"]
    with mock.patch.object(sys, "argv", [*argv, json.dumps(request)]):
        main(load_example(name))
    return capsys.readouterr().out


def test_every_example_is_covered():
    found = {path.stem for path in EXAMPLES.glob("*.py")}
    assert set(DOC_EXAMPLES) <= found


@pytest.mark.parametrize("name", sorted(DOC_EXAMPLES))
def test_schema(name):
    topic, defs = DOC_EXAMPLES[name]
    result = script(name, "schema")
    schema = json.loads(result.stdout)
    assert schema["title"] == topic
    assert set(schema["$defs"]) == defs
    assert "unexposed_method" not in result.stdout


@pytest.mark.parametrize("name", sorted(DOC_EXAMPLES))
def test_generate_gives_an_importable_client(name, tmp_path, monkeypatch):
    topic = DOC_EXAMPLES[name][0]
    code = script(name, "generate").stdout
    path = tmp_path / f"client_{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(f"client_{name}", path)
    assert spec is not None and spec.loader is not None
    client = importlib.util.module_from_spec(spec)
    # the client builds its model from its own module, found by name
    monkeypatch.setitem(sys.modules, f"client_{name}", client)
    spec.loader.exec_module(client)
    assert f'"topic": "{topic}"' in code
    if name == "hello_world":
        assert callable(client.hello_world)
    else:
        assert hasattr(client.HelloWorld, "repeat_message")
        assert not hasattr(client.HelloWorld, "unexposed_method")
    if name == "greet_response":
        assert set(client.GreetResponse.model_fields) == {
            "message",
            "greetings",
            "greeting_time",
        }


def test_hello_world_result(capsys):
    assert compute(capsys, "hello_world", {"func_name": "hello_world"}) == (
        '"HelloWorld"\n'
    )


@pytest.mark.parametrize("name", ["hello_world_class", "hello_world_configured"])
def test_repeat_message_result(capsys, name):
    request = {
        "class_name": "HelloWorld",
        "message": "Hi",
        "function": {"func_name": "repeat_message", "repeat": 2},
    }
    assert compute(capsys, name, request) == '["Hi","Hi"]\n'


def test_greet_result(capsys):
    request = {
        "class_name": "HelloWorld",
        "message": "Peter",
        "function": {"func_name": "greet", "repeat": 2, "greet_message": "Hello"},
    }
    result = json.loads(compute(capsys, "greet_response", request))
    assert result["message"] == "Peter"
    assert result["greetings"] == ["Hello", "Hello"]
    assert "T" in result["greeting_time"]


def test_configured_constraint_is_enforced():
    request = {
        "class_name": "HelloWorld",
        "message": "Hi",
        "function": {"func_name": "repeat_message", "repeat": -1},
    }
    result = script(
        "hello_world_configured", "compute", json.dumps(request), check=False
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        "hello_world_configured.py: error: invalid request: function.repeat: Input "
        "should be greater than or equal to 0 (got -1)"
    )


def test_unexposed_method_is_rejected():
    request = {
        "class_name": "HelloWorld",
        "message": "Hi",
        "function": {"func_name": "unexposed_method"},
    }
    result = script(
        "hello_world_configured", "compute", json.dumps(request), check=False
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unexposed_method" in result.stderr


def test_hello_world_through_a_broker():
    from dasf_geo.broker import EmbeddedBroker

    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        port = broker.url.rsplit(":", 1)[1]
        options = ["-H", "127.0.0.1", "-p", port]
        with tempfile.TemporaryFile() as log:
            listener = subprocess.Popen(
                [sys.executable, str(EXAMPLES / "hello_world.py"), *options, "listen"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
            try:
                deadline = time.monotonic() + timeout(30)
                output = ""
                while "established" not in output:
                    assert listener.poll() is None, f"listen exited:\n{output}"
                    assert time.monotonic() < deadline, f"no connection:\n{output}"
                    time.sleep(0.05)
                    log.seek(0)
                    output = log.read().decode("utf-8", "replace")
                result = script(
                    "hello_world",
                    *options,
                    "send-request",
                    '{"func_name": "hello_world"}',
                )
                assert result.stdout == '"HelloWorld"\n'
            finally:
                listener.send_signal(signal.SIGINT)
                try:
                    status = listener.wait(timeout(15))
                except subprocess.TimeoutExpired:  # pragma: no cover - a hang
                    listener.kill()
                    listener.wait(timeout(5))
                    raise
            assert status == 0


def test_examples_need_no_working_directory(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "hello_world.py"), "schema", "-i", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=timeout(60),
        check=True,
    )
    assert json.loads(result.stdout)["title"] == "hello-world-topic"
    assert Path(tmp_path).exists()
