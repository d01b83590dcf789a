"""``dasf-geo serve``: the module's own settings, the environment, the broker.

``serve`` runs as a child process (it serves until stopped); what it prints
is compared, and the service is called the way its users call it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dasf_geo
from dasf_geo.broker import EmbeddedBroker
from dasf_geo.cli import _serve, tool
from dasf_geo.cli._settings import main_settings
from dasf_geo.exceptions import ConfigurationError
from tests.conftest import REPO_ROOT, free_port, timeout

CLIMATE = '''\
"""Climate tools."""
from dasf_geo import main

__all__ = ["hello"]


def hello(name: str = "world") -> str:
    return f"hello {name}"


if __name__ == "__main__":
    main(messaging_config=dict(topic="climate-tools"))
'''

PLAIN = """\
from dasf_geo import main

__all__ = ["ping"]


def ping() -> str:
    return "pong"


if __name__ == "__main__":
    main()
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DE_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@contextlib.contextmanager
def serving(args: list[str], cwd: Path, env: dict[str, str], until: str):
    """Run ``dasf-geo serve ARGS`` until it printed ``until``; yield its output."""
    log = cwd / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dasf_geo.cli.tool", "serve", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout(60)
        while until not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert until in log.read_text(), log.read_text()
        yield lambda: log.read_text()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout(20))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_serve_uses_the_topic_main_gives_and_the_generated_client_answers(tmp_path):
    (tmp_path / "climate_tools.py").write_text(CLIMATE)
    port = free_port()
    env = _env(DE_BACKEND_PORT=str(port), DE_BACKEND_HOST="127.0.0.1")
    client_code = subprocess.run(
        [sys.executable, "climate_tools.py", "generate"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=timeout(60),
    ).stdout
    (tmp_path / "climate_client.py").write_text(client_code)
    with serving(
        ["climate_tools.py", "--port", str(port)], tmp_path, _env(), "call it with"
    ) as output:
        assert output().splitlines()[:5] == [
            f"embedded broker listening on ws://127.0.0.1:{port}",
            "serving climate_tools on topic 'climate-tools'",
            "  functions: hello",
            "call it with:",
            f"  dasf-geo call climate-tools hello --broker ws://127.0.0.1:{port}",
        ]
        # a stub loaded from its file, not importable by name
        spec = importlib.util.spec_from_file_location(
            "stub_from_file", tmp_path / "climate_client.py"
        )
        assert spec is not None and spec.loader is not None
        stub = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(stub)
        assert "stub_from_file" not in sys.modules
        assert stub.hello(name="stub") == "hello stub"


@pytest.mark.slow
def test_serve_honours_de_backend_variables_and_starts_no_broker(tmp_path):
    (tmp_path / "plain.py").write_text(PLAIN)
    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        env = _env(
            DE_BACKEND_HOST="127.0.0.1",
            DE_BACKEND_PORT=str(broker.port),
            DE_BACKEND_TOPIC="env-topic",
        )
        with serving(["plain.py"], tmp_path, env, "call it with") as output:
            assert output().splitlines()[:3] == [
                f"connecting to the broker at ws://127.0.0.1:{broker.port}",
                "serving plain on topic 'env-topic'",
                "  functions: ping",
            ]
            with dasf_geo.connect("env-topic", broker.url, timeout=timeout(30)) as svc:
                assert svc.ping() > 0
                assert svc.members == ["ping"]
        # the command line wins over the environment
        with serving(
            ["plain.py", "--topic", "cli-topic"], tmp_path, env, "call it with"
        ) as output:
            assert "serving plain on topic 'cli-topic'" in output()


def test_port_with_broker_is_refused(capsys, tmp_path):
    (tmp_path / "plain.py").write_text(PLAIN)
    status = tool.main(
        ["serve", str(tmp_path / "plain.py"), "--broker", "ws://h:1", "--port", "9"]
    )
    assert status == 1
    assert capsys.readouterr().err == (
        "error: --port starts an embedded broker on that port; with --broker the "
        "service connects to that broker instead: give one of them, not both\n"
    )


def test_missing_members_are_reported_before_a_broker_starts(capsys, tmp_path):
    (tmp_path / "empty_mod.py").write_text("x = 1\n")
    assert tool.main(["serve", str(tmp_path / "empty_mod.py"), "--port", "9"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "error: found no members for the backend module 'empty_mod'; list them in "
        "__all__ or give --members NAME ...\n"
    )


def test_busy_port_is_said(capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        first = taken.getsockname()[1]
        monkeypatch.setattr(_serve, "EMBEDDED_PORTS", range(first, first + 20))
        broker = _serve.start_embedded_broker()
        try:
            assert broker.port > first
            busy = (
                f"port {first} is"
                if broker.port == first + 1
                else f"ports {first}-{broker.port - 1} are"
            )
            assert capsys.readouterr().out == f"{busy} busy; using {broker.port}\n"
        finally:
            broker.stop()


# ----------------------------------------------------------- main()'s settings


def _module(tmp_path: Path, name: str, source: str):
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    return _serve.load_module(str(path))


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            '    main(messaging_config=dict(topic="a-b"))\n',
            {"messaging_config": {"topic": "a-b"}},
        ),
        ('    main(topic="t", members=["f"])\n', {"topic": "t", "members": ["f"]}),
        ('    opts = {"topic": "x"}\n    main(**opts)\n', {"topic": "x"}),
        ('    import sys\n    sys.exit(main(topic="s"))\n', {"topic": "s"}),
        ('    Model = main(topic="m")\n', {"topic": "m"}),
        ('    print("no main here")\n', {}),
    ],
)
def test_main_settings_forms(tmp_path, tail, expected):
    source = "from dasf_geo import main\n\n\ndef f() -> int:\n    return 1\n\n\n"
    source += 'if __name__ == "__main__":\n' + tail
    name = f"mod_{abs(hash(tail))}"
    assert main_settings(_module(tmp_path, name, source)) == expected


def test_main_settings_of_a_module_without_guard_or_source(tmp_path):
    assert main_settings(_module(tmp_path, "noguard", "x = 1\n")) == {}
    assert main_settings(sys) == {}


def test_main_settings_that_cannot_be_read_name_the_line(tmp_path):
    source = (
        "from dasf_geo import main\n\n"
        'if __name__ == "__main__":\n'
        "    main(topic=undefined_name)\n"
    )
    module = _module(tmp_path, "broken_settings", source)
    with pytest.raises(ConfigurationError) as info:
        main_settings(module)
    assert str(info.value) == (
        f"cannot read the settings that {tmp_path / 'broken_settings.py'}:4 gives "
        "main(): NameError: name 'undefined_name' is not defined; give them on the "
        "command line instead (--topic, --broker, --members, ...)"
    )


def test_another_main_is_not_mistaken_for_dasf_geo_main(tmp_path):
    source = (
        "def main(**kw):\n    return kw\n\n"
        'if __name__ == "__main__":\n'
        '    main(topic="not-ours")\n'
    )
    assert main_settings(_module(tmp_path, "own_main", source)) == {}


# --------------------------------------------------------- the module's command


def test_module_without_a_command_prints_help_and_exits_2():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "hello_world.py")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout(60),
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("usage: hello_world.py")
    assert result.stderr.splitlines()[-1] == (
        "hello_world.py: error: give a COMMAND, e.g. listen, schema or generate"
    )


def test_missing_annotations_warn_at_the_users_line(tmp_path):
    from dasf_geo import BackendModule

    module = _module(
        tmp_path, "unannotated", "__all__ = ['f']\n\n\ndef f(x):\n    return x\n"
    )
    with pytest.warns(UserWarning) as record:
        BackendModule.create_model(
            module.__name__, members=[module.f], messaging_config={"topic": "u"}
        )
    places = {(Path(w.filename), w.lineno) for w in record}
    assert places == {(tmp_path / "unannotated.py", 4)}


def test_module_whose_script_keeps_the_model_gets_it_without_a_command(tmp_path):
    """``Model = main(...)`` with no command returns the model (as demessaging)."""
    (tmp_path / "keeps.py").write_text(
        "from dasf_geo import main\n\n__all__ = ['f']\n\n\n"
        "def f() -> int:\n    return 1\n\n\n"
        'if __name__ == "__main__":\n'
        '    Model = main(messaging_config=dict(topic="t"))\n'
        '    print("got", Model.backend_config.messaging_config.topic)\n'
    )
    result = subprocess.run(
        [sys.executable, "keeps.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout(60),
    )
    assert (result.returncode, result.stdout) == (0, "got t\n")
