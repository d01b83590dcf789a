"""The per-module command line behaves like demessaging 0.6.4's.

A user moving a backend module from ``demessaging`` to ``dasf_geo`` keeps
its command lines, ``main()`` arguments and environment variables. These
tests run the reference package in its cached virtual environment (see
tests/interop/peers.py) next to ours and compare:

- every option and sub-command of the reference command line is accepted;
- the same environment, ``main()`` arguments and options give the same
  broker URLs (precedence: command line > main() > environment).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import timeout

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

# listen's request dumping (--dump-to, --dump-tool, -c/--cmd) is not
# implemented by dasf_geo
NOT_SUPPORTED = {"listen": {"--dump-to", "--dump-tool", "-c", "--cmd"}}

PARSER_SCRIPT = """
import argparse, json, sys
from {package}.cli{module} import get_parser

parser = get_parser()
out = {{"options": [], "commands": {{}}}}
for action in parser._actions:
    out["options"].extend(action.option_strings)
    if isinstance(action, argparse._SubParsersAction):
        for name, sub in action.choices.items():
            out["commands"][name] = [
                o for a in sub._actions for o in a.option_strings
            ]
print(json.dumps(out))
"""

MODULE_SCRIPT = """
from {package} import main

__all__ = ["hello_world"]


def hello_world() -> str:
    return "HelloWorld"


if __name__ == "__main__":
    Model = main(messaging_config=dict(topic="main-topic", port="2222", tenant="t1"))
    config = Model.backend_config.messaging_config
    print("URL", config.get_topic_url("x"))
    print("URL", config.get_topic_url("x", "sub"))
"""


@pytest.fixture(scope="module")
def dm_python() -> Path:
    from tests.interop import peers

    return peers.peer_python("demessaging")


def run_python(python: Path | str, args: list[str], env: dict[str, str], cwd: Path):
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("DE_BACKEND_", "DE_LOGGING_"))
    }
    result = subprocess.run(
        [str(python), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **env},
        timeout=timeout(120),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def parser_of(python, package, module, tmp_path):
    script = tmp_path / f"parser_{package}.py"
    script.write_text(PARSER_SCRIPT.format(package=package, module=module))
    return json.loads(run_python(python, [str(script)], {}, tmp_path))


def test_reference_options_and_commands_are_accepted(dm_python, tmp_path):
    theirs = parser_of(dm_python, "demessaging", "", tmp_path)
    ours = parser_of(sys.executable, "dasf_geo", ".module", tmp_path)
    assert set(theirs["options"]) <= set(ours["options"])
    assert set(theirs["commands"]) <= set(ours["commands"])
    for name, options in theirs["commands"].items():
        missing = set(options) - set(ours["commands"][name])
        assert missing <= NOT_SUPPORTED.get(name, set()), name


@pytest.mark.parametrize(
    ("env", "args"),
    [
        ({}, []),
        ({"DE_BACKEND_HOST": "env-host", "DE_BACKEND_PORT": "1111"}, []),
        (
            {"DE_BACKEND_HOST": "env-host", "DE_BACKEND_NAMESPACE": "env-ns"},
            ["-t", "cli-topic", "-p", "3333", "--persistent", "persistent"],
        ),
        ({"DE_BACKEND_TENANT": "env-tenant"}, ["--tenant", "cli-tenant"]),
        ({}, ["--websocket-url", "ws://cli-host:1/ws"]),
    ],
)
def test_same_urls_as_the_reference(dm_python, tmp_path, env, args):
    urls = {}
    for package, python in (("demessaging", dm_python), ("dasf_geo", sys.executable)):
        script = tmp_path / f"module_{package}.py"
        script.write_text(MODULE_SCRIPT.format(package=package))
        out = run_python(python, [str(script), *args], env, tmp_path)
        urls[package] = [line for line in out.splitlines() if line.startswith("URL ")]
    assert len(urls["dasf_geo"]) == 2
    assert urls["dasf_geo"] == urls["demessaging"]
