"""Run the ``console`` blocks of the docs and compare what they print.

The convention (see docs/README of tests/test_docs.py):

- A fenced block marked ``console`` is a terminal session: lines starting
  with ``$ `` are commands (a line ending in ``\\`` continues on the next),
  the lines after a command up to the next ``$ `` are what it prints
  (standard output, then standard error).
- ``...`` alone on a line stands for any number of lines; ``...`` inside a
  line for any text. Trailing blanks are ignored.
- A command ending in ``&`` runs in the background, as in a shell: the test
  waits until it has printed its expected lines (which it may continue
  after) and stops it when the page is done.
- An HTML comment ``<!-- console`` … ``-->`` holds a session that is run but
  not shown: what the reader has running in another terminal (the service
  the README's first command starts, for example).
- The blocks of a page run in order in one temporary folder holding links
  to ``examples/``, ``sample_data/`` and the virtual environment
  (``.venv``), with the environment's ``bin`` first on ``PATH`` (the
  README says to activate it). Standard output is a terminal (100 columns);
  standard error is not.
- So that the docs can say 8080 while tests run in parallel, ``8080`` in
  commands and output stands for a free port picked per page, which is also
  ``DE_BACKEND_PORT``; ``dasf-geo serve`` and ``dasf-geo broker`` without a
  port or broker of their own get ``--port`` that port.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import REPO_ROOT, free_port, timeout

_BLOCK = re.compile(
    r"^(?P<indent>[ \t]*)(?:```console\n(?P<shown>.*?)^(?P=indent)```"
    r"|<!-- console\n(?P<hidden>.*?)^(?P=indent)-->)",
    re.S | re.M,
)
WIDTH = 100


@dataclass
class Step:
    """One command and the output it is expected to print."""

    command: str
    expected: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def background(self) -> bool:
        return self.command.rstrip().endswith("&")


def console_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every console block and hidden session, in order."""
    found = []
    for match in _BLOCK.finditer(text):
        body = match.group("shown") or match.group("hidden") or ""
        indent = match.group("indent")
        if indent:
            body = "".join(
                line[len(indent) :] if line.startswith(indent) else line
                for line in body.splitlines(keepends=True)
            )
        found.append((text.count("\n", 0, match.start()) + 2, body))
    return found


def parse_steps(body: str, first_line: int = 1) -> list[Step]:
    """The commands of a console block with their expected output."""
    steps: list[Step] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            start = i
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command + "\n" + lines[i]
            steps.append(Step(command, [], first_line + start))
        elif steps:
            steps[-1].expected.append(line)
        elif line.strip():
            raise ValueError(
                f"line {first_line + i}: output before the first '$ ' command"
            )
        i += 1
    for step in steps:
        while step.expected and not step.expected[-1].strip():
            step.expected.pop()
    return steps


def _line_matches(pattern: str, line: str) -> bool:
    if "..." not in pattern:
        return pattern.rstrip() == line.rstrip()
    parts = [re.escape(p) for p in pattern.rstrip().split("...")]
    return re.fullmatch(".*".join(parts), line.rstrip(), re.S) is not None


def output_matches(expected: list[str], actual: list[str], prefix: bool) -> bool:
    """``actual`` against ``expected`` (with ``...``); a prefix is enough if asked."""
    if prefix:
        expected = [*expected, "..."]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        key = (i, j)
        if key in memo:
            return memo[key]
        if i == len(expected):
            result = j == len(actual)
        elif expected[i].strip() == "...":
            result = any(match(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            result = (
                j < len(actual)
                and _line_matches(expected[i], actual[j])
                and match(i + 1, j + 1)
            )
        memo[key] = result
        return result

    return match(0, 0)


def _lines(text: str) -> list[str]:
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


class Session:
    """A terminal for one page: a folder, an environment, background jobs."""

    def __init__(self) -> None:
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="dasf-geo-docs-")
        self._logs = tempfile.TemporaryDirectory(prefix="dasf-geo-docs-jobs-")
        self.cwd = Path(self._tmp.name)
        for name in ("examples", "sample_data"):
            (self.cwd / name).symlink_to(REPO_ROOT / name)
        bin_dir = Path(sys.executable).parent
        venv = bin_dir.parent
        if (bin_dir / "activate").is_file():
            (self.cwd / ".venv").symlink_to(venv)
        else:  # not in a virtual environment: an activate that sets PATH
            (self.cwd / ".venv" / "bin").mkdir(parents=True)
            (self.cwd / ".venv" / "bin" / "activate").write_text(
                f'export PATH="{bin_dir}:$PATH"\n'
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DE_")}
        env.update(
            PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            DE_BACKEND_PORT=str(self.port),
            COLUMNS=str(WIDTH),
            LINES="40",
            PYTHONUNBUFFERED="1",
            PYTHONWARNINGS="ignore::DeprecationWarning",
        )
        env.pop("VIRTUAL_ENV", None)
        self.env = env
        self.jobs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def close(self) -> None:
        """Stop the background jobs (Ctrl-C, then kill) and remove the folder."""
        for proc, _ in self.jobs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
        for proc, _ in self.jobs:
            try:
                proc.wait(timeout(10))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._tmp.cleanup()
        self._logs.cleanup()

    def command_line(self, command: str) -> str:
        """The command as run: 8080 is this page's port."""
        command = command.rstrip()
        if command.endswith("&"):
            command = command[:-1].rstrip()
        command = command.replace("8080", str(self.port))
        words = shlex.split(command.split("|")[0].split(">")[0], posix=True)
        if words[:2] in (["dasf-geo", "serve"], ["dasf-geo", "broker"]):
            own = {"--port", "--broker", "--websocket-url"}
            if not own & {w.split("=")[0] for w in words}:
                first, _, rest = command.partition("\n")
                command = f"{first} --port {self.port}" + (f"\n{rest}" if rest else "")
        return command

    def expected(self, step: Step) -> list[str]:
        return [line.replace("8080", str(self.port)) for line in step.expected]

    def run(self, step: Step, where: str) -> None:
        """Run one step; raise AssertionError with both outputs on a mismatch."""
        command = self.command_line(step.command)
        expected = self.expected(step)
        if step.background:
            actual = self._start(command, expected)
        else:
            actual = self._foreground(command)
        if not output_matches(expected, actual, prefix=step.background):
            raise AssertionError(
                f"{where}: `$ {step.command}` printed:\n"
                + "\n".join(actual)
                + "\n--- but the docs say:\n"
                + "\n".join(step.expected)
            )

    def _start(self, command: str, expected: list[str]) -> list[str]:
        log = Path(self._logs.name) / f"job{len(self.jobs)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.jobs.append((proc, log))
        deadline = time.monotonic() + timeout(60)
        while True:
            actual = _lines(log.read_text(errors="replace"))
            if output_matches(expected, actual, prefix=True):
                return actual
            if proc.poll() is not None or time.monotonic() > deadline:
                time.sleep(0.2)
                return _lines(log.read_text(errors="replace"))
            time.sleep(0.1)

    def _foreground(self, command: str) -> list[str]:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, WIDTH, 0, 0))
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=slave,
                stderr=err,
                start_new_session=True,
            )
            os.close(slave)
            chunks: list[bytes] = []
            deadline = time.monotonic() + timeout(120)
            try:
                while True:
                    ready, _, _ = select.select([master], [], [], 0.2)
                    if ready:
                        try:
                            data = os.read(master, 65536)
                        except OSError:  # EIO: every writer has gone
                            data = b""
                        if not data:
                            break
                        chunks.append(data)
                    if time.monotonic() > deadline:
                        os.killpg(proc.pid, signal.SIGKILL)
                        raise AssertionError(f"`{command}` did not finish in time")
            finally:
                os.close(master)
                proc.wait()
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        stdout = b"".join(chunks).decode(errors="replace")
        return _lines(stdout) + _lines(stderr)
