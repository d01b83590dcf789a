"""Run the reference DASF peers (demessaging, dasf-broker-django) next to ours.

The reference packages pin versions that clash with dasf_geo's own
dependencies, so each one lives in its own virtual environment, built once
from PyPI and cached under ``${DASF_GEO_PEER_CACHE:-~/.cache/dasf_geo/peers}``:

* :func:`peer_python` returns the interpreter of such a venv, creating it
  if needed. A file lock (``fcntl``) serialises concurrent builders; a
  completion marker written last makes a half-built venv (a killed build,
  a full disk) be rebuilt instead of reused.
* :class:`PeerProcess` runs a peer (a backend, a broker) as a subprocess,
  keeps its output in a file (a pipe could fill up and block the peer) and
  stops and reaps it, so failures can quote what the peer said.
* :class:`Endpoint` describes a broker in either URL layout (docs/configuration.md)
  (Pulsar ``/ws/v2/...`` or the plain ``{websocket_url}/{topic}``) and
  builds the command line options and config objects the peers need.
* :func:`wait_for_backend` sends DASF ``ping`` messages to a topic until a
  ``pong`` comes back: a backend is ready when it answers, not after a
  sleep.
* :class:`DjangoSite` copies the minimal Django project in ``django_site/``,
  migrates it (SQLite), creates topics and tokens with dasf-broker-django's
  management commands, and serves it with daphne.

Everything here raises :class:`PeerError` with the peer's own output when
something goes wrong, so a failing interop test says why.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dasf_geo.testing.config import FakeMessagingConfig
from dasf_geo.testing.processes import Process, free_port, tail

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / "peers"
DJANGO_SITE_TEMPLATE = HERE / "django_site"
#: The interpreter of dasf_geo's own environment (runs dasf_geo peers).
OUR_PYTHON = Path(sys.executable)

#: Pinned requirements of each reference peer environment. Changing a list
#: changes the cache directory's hash, so a new venv is built.
PEER_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    # demessaging's xarray validators break with xarray >= 2026.4 (see
    # docs/protocol.md); scipy reads and writes the NetCDF3 that encode_xarray
    # produces, netCDF4 is the engine xarray falls back to.
    "demessaging": (
        "demessaging[backend]==0.6.4",
        "xarray==2026.2.0",
        "numpy==2.4.6",
        "pandas==3.1.1",
        "scipy==1.17.1",
        "netCDF4==1.7.5.1.post1",
    ),
    # dasf-broker-django needs channels and django-guardian (its metadata),
    # djangorestframework (its token middleware imports rest_framework's
    # Token model) and daphne to serve the ASGI app; channels-redis lets
    # several daphne processes of one site share a Redis channel layer.
    "dasf-broker-django": (
        "dasf-broker-django==0.0.1.dev1",
        "Django==5.2.19",
        "channels==4.3.2",
        "daphne==4.2.3",
        "django-guardian==3.5.2",
        "djangorestframework==3.18.3",
        "channels-redis==4.3.0",
    ),
}

#: Name of the marker file written once a venv is complete.
COMPLETE_MARKER = ".dasf_geo_peer_complete"
#: Seconds a cold ``pip install`` may take before the build is abandoned.
PIP_TIMEOUT = float(os.environ.get("DASF_GEO_PEER_PIP_TIMEOUT", "1200"))


class PeerError(RuntimeError):
    """A reference peer could not be installed, started or reached.

    The message names the peer and quotes the tail of its output.
    """


# --------------------------------------------------------------------------
# cached virtual environments


def cache_root() -> Path:
    """The directory holding the peer venvs.

    ``DASF_GEO_PEER_CACHE`` overrides the default ``~/.cache/dasf_geo/peers``.
    """
    env = os.environ.get("DASF_GEO_PEER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache/dasf_geo/peers"


def requirements_hash(requirements: Sequence[str], python: Path | str) -> str:
    """A short stable hash of a requirement list and the base interpreter.

    The interpreter's version is part of the hash because a venv only works
    with the Python it was made from.
    """
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    text = json.dumps({"requirements": list(requirements), "python": version})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_name(name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise PeerError(
            f"invalid peer name {name!r}: use letters, digits, '-', '_' or '.'"
        )


def venv_dir(
    name: str, requirements: Sequence[str], python: Path | str = OUR_PYTHON
) -> Path:
    """Where the venv for ``name`` with ``requirements`` lives in the cache."""
    _check_name(name)
    return cache_root() / f"{name}-{requirements_hash(requirements, python)}"


def venv_python(path: Path) -> Path:
    """The interpreter inside the venv at ``path``."""
    return path / "bin" / "python"


def is_complete(path: Path) -> bool:
    """Whether the venv at ``path`` finished building (its marker exists)."""
    return (path / COMPLETE_MARKER).is_file() and venv_python(path).exists()


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = PIP_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``path`` for the block.

    Raises:
        PeerError: the lock was not obtained within ``timeout`` seconds.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PeerError(
                        f"could not lock {path} within {timeout:g} s: another "
                        "process is building this peer environment; wait for it "
                        "or remove the lock file if no build is running"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(cmd: Sequence[str], what: str, timeout: float) -> None:
    try:
        proc = subprocess.run(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.output or ""
        if isinstance(out, bytes):
            out = out.decode(errors="replace")
        raise PeerError(
            f"{what} did not finish within {timeout:g} s; output:\n{tail(out)}"
        ) from None
    if proc.returncode != 0:
        raise PeerError(
            f"{what} failed with exit code {proc.returncode}; output:\n"
            f"{tail(proc.stdout)}"
        )


def build_venv(
    path: Path,
    requirements: Sequence[str],
    python: Path | str = OUR_PYTHON,
    timeout: float = PIP_TIMEOUT,
) -> None:
    """Create a venv at ``path`` and ``pip install`` ``requirements`` into it.

    Any previous content of ``path`` is removed first. The completion marker
    is written last, so an interrupted build is never mistaken for a good
    one.

    Raises:
        PeerError: venv creation or ``pip install`` failed; the message
            quotes the tail of pip's output.
    """
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Without requirements there is nothing for pip to do: skip installing it.
    no_pip = [] if requirements else ["--without-pip"]
    _run_logged(
        [str(python), "-m", "venv", *no_pip, str(path)],
        f"creating the virtual environment {path}",
        timeout,
    )
    if requirements:
        _run_logged(
            [
                str(venv_python(path)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                *requirements,
            ],
            f"pip install {' '.join(requirements)} into {path}",
            timeout,
        )
    marker = {"requirements": list(requirements), "built": time.time()}
    (path / COMPLETE_MARKER).write_text(json.dumps(marker), encoding="utf-8")


def peer_python(
    name: str,
    requirements: Sequence[str] | None = None,
    python: Path | str = OUR_PYTHON,
) -> Path:
    """The interpreter of the cached venv for peer ``name``, built if needed.

    Args:
        name: a key of :data:`PEER_REQUIREMENTS`, or any name when
            ``requirements`` is given.
        requirements: pip requirement strings (default: the pinned list of
            ``name``).
        python: the base interpreter the venv is made from.

    Returns:
        The path of ``bin/python`` in the venv.

    Raises:
        PeerError: the name is unknown or invalid, or the build failed.
    """
    if requirements is None:
        if name not in PEER_REQUIREMENTS:
            known = ", ".join(sorted(PEER_REQUIREMENTS))
            raise PeerError(
                f"unknown peer {name!r}: known peers are {known}; pass "
                "requirements=[...] to build another environment"
            )
        requirements = PEER_REQUIREMENTS[name]
    if isinstance(requirements, str):
        raise PeerError(
            f"requirements for peer {name!r} must be a list of strings, "
            f"not the string {requirements!r}"
        )
    path = venv_dir(name, requirements, python)
    if is_complete(path):
        return venv_python(path)
    with file_lock(path.with_name(path.name + ".lock")):
        # Somebody else may have finished the build while we waited.
        if not is_complete(path):
            build_venv(path, requirements, python)
    return venv_python(path)


# --------------------------------------------------------------------------
# peer processes


class PeerProcess(Process):
    """A peer running as a subprocess, with its output kept in a file.

    The shared :class:`dasf_geo.testing.processes.Process`, started in a
    session of its own (so that :meth:`stop` takes its whole process group)
    and spelled as the harness always did (``alive``, ``proc``,
    :meth:`check_alive`).

    Args:
        cmd: the command line.
        name: how to call the peer in error messages.
        cwd: working directory.
        env: extra environment variables.

    Use as a context manager, or call :meth:`stop`; both kill and reap the
    process (its whole process group).
    """

    def __init__(
        self,
        cmd: Sequence[str | os.PathLike[str]],
        name: str,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(cmd, name=name, cwd=cwd, env=env, new_session=True)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The running :class:`subprocess.Popen`."""
        assert self.popen is not None
        return self.popen

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.running

    def describe(self) -> str:
        """The peer's name, state and output tail, for error messages."""
        return "peer " + super().describe()

    def check_alive(self) -> None:
        """Raise if the peer has exited.

        Raises:
            PeerError: the peer is not running; quotes its output.
        """
        if not self.alive:
            raise PeerError(f"{self.describe()}\nthe peer exited unexpectedly")

    def stop(self, sig: int = signal.SIGTERM, grace: float = 5.0) -> int | None:
        """Terminate the peer (SIGTERM, then SIGKILL after ``grace`` s) and reap it.

        Returns:
            The exit code.
        """
        return super().stop(sig, grace)

    def __enter__(self) -> PeerProcess:
        return self


def run_peer(
    cmd: Sequence[str | os.PathLike[str]],
    name: str,
    timeout: float,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run a short-lived peer command and return its stdout.

    Raises:
        PeerError: the command failed or ran longer than ``timeout``;
            quotes its stderr.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=str(cwd) if cwd else None,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr or ""
        if isinstance(err, bytes):
            err = err.decode(errors="replace")
        raise PeerError(
            f"{name} did not finish within {timeout:g} s; stderr:\n{tail(err)}"
        ) from None
    if proc.returncode != 0:
        raise PeerError(
            f"{name} failed with exit code {proc.returncode}; stderr:\n"
            f"{tail(proc.stderr)}\nstdout:\n{tail(proc.stdout)}"
        )
    return proc.stdout


# --------------------------------------------------------------------------
# brokers and how peers reach them


@dataclass
class Endpoint:
    """A broker as the peers see it.

    Attributes:
        layout: ``"pulsar"`` (``/ws/v2/...``) or ``"plain"``
            (``{websocket_url}/{topic}``, dasf-broker-django).
        base: for ``pulsar`` the broker's ``ws://host:port``; for ``plain``
            the websocket URL (``ws://host:port/ws``).
        header: handshake headers (e.g. an ``authorization`` token).
        persistent: Pulsar persistence (``pulsar`` layout only).
    """

    layout: str
    base: str
    header: dict[str, str] = field(default_factory=dict)
    persistent: bool = False

    def __post_init__(self) -> None:
        if self.layout not in ("pulsar", "plain"):
            raise PeerError(
                f"unknown URL layout {self.layout!r}: use 'pulsar' or 'plain'"
            )
        if not self.base.startswith(("ws://", "wss://")):
            raise PeerError(f"broker URL {self.base!r} must start with ws:// or wss://")
        self.base = self.base.rstrip("/")

    @property
    def host(self) -> str:
        """The broker's host name."""
        return urlsplit(self.base).hostname or "localhost"

    @property
    def port(self) -> int:
        """The broker's port."""
        return urlsplit(self.base).port or 80

    def topic_url(self, topic: str, subscription: str | None = None) -> str:
        """The producer URL of ``topic`` or, with ``subscription``, the consumer URL."""
        return self.config(topic).get_topic_url(topic, subscription)

    def backend_args(self, topic: str) -> list[str]:
        """Command line options pointing a DASF module (ours or demessaging) here."""
        args = ["-t", topic]
        if self.layout == "plain":
            args += ["--websocket-url", self.base]
        else:
            args += ["-H", self.host, "-p", str(self.port)]
            if self.persistent:
                args += ["--persistent", "persistent"]
        if self.header:
            args += ["--header", json.dumps(self.header)]
        return args

    def config(self, topic: str, **kwargs: Any) -> FakeMessagingConfig:
        """A config object for dasf_geo's ``Client``/``AsyncClient``."""
        kwargs.setdefault("producer_connection_timeout", 10.0)
        return FakeMessagingConfig(
            self.base,
            topic,
            layout=self.layout,
            header=dict(self.header),
            persistent=self.persistent,
            **kwargs,
        )


def _ws_connect(url: str, header: Mapping[str, str], timeout: float) -> Any:
    from websockets.sync.client import connect

    return connect(
        url,
        additional_headers=dict(header),
        open_timeout=timeout,
        max_size=None,
    )


def wait_for_backend(
    endpoint: Endpoint,
    topic: str,
    timeout: float,
    process: PeerProcess | None = None,
    interval: float = 0.25,
) -> float:
    """Ping the backend on ``topic`` until it answers with ``pong``.

    A fresh response topic is consumed first; then a DASF ``ping`` is sent
    every ``interval`` seconds (on a non-persistent topic a ping sent before
    the backend subscribed is simply lost) until a ``pong`` arrives.

    Returns:
        Seconds waited.

    Raises:
        PeerError: no pong within ``timeout`` seconds, or ``process`` died;
            the message names the topic and quotes the process's output.
    """
    start = time.monotonic()
    deadline = start + timeout
    response_topic = f"{topic}_ready{secrets.token_hex(8)}"
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None:
            process.check_alive()
        try:
            with (
                _ws_connect(
                    endpoint.topic_url(response_topic, "ready"),
                    endpoint.header,
                    timeout=max(0.5, deadline - time.monotonic()),
                ) as consumer,
                _ws_connect(
                    endpoint.topic_url(topic),
                    endpoint.header,
                    timeout=max(0.5, deadline - time.monotonic()),
                ) as producer,
            ):
                while time.monotonic() < deadline:
                    if process is not None:
                        process.check_alive()
                    # An integer, as demessaging sends it: dasf-broker-django
                    # stores requestContext in an IntegerField and fails the
                    # whole connection (close 1011) on anything else.
                    context = secrets.randbelow(2**31)
                    producer.send(
                        json.dumps(
                            {
                                "payload": "",
                                "properties": {
                                    "messageType": "ping",
                                    "requestContext": context,
                                    "response_topic": response_topic,
                                },
                                "context": context,
                            }
                        )
                    )
                    until = time.monotonic() + interval
                    while (left := until - time.monotonic()) > 0:
                        try:
                            raw = consumer.recv(timeout=left)
                        except TimeoutError:
                            break
                        msg = json.loads(raw)
                        if "messageId" in msg:
                            consumer.send(json.dumps({"messageId": msg["messageId"]}))
                        props = msg.get("properties") or {}
                        if props.get("messageType") == "pong":
                            return time.monotonic() - start
                    # Drain the producer's acks so they do not pile up.
                    with contextlib.suppress(TimeoutError):
                        while True:
                            producer.recv(timeout=0)
        except PeerError:
            raise
        except Exception as exc:  # broker not up yet, connection dropped
            last_error = exc
            time.sleep(interval)
    where = endpoint.topic_url(topic)
    detail = f"; last connection error: {last_error!r}" if last_error else ""
    extra = f"\n{process.describe()}" if process is not None else ""
    raise PeerError(
        f"no pong from a backend on topic {topic!r} ({where}) within "
        f"{timeout:g} s{detail}{extra}"
    )


# --------------------------------------------------------------------------
# demessaging peers


def _start_backend(
    python: Path | str,
    endpoint: Endpoint,
    topic: str,
    timeout: float,
    module: Path,
    extra_args: Sequence[str],
) -> PeerProcess:
    """Run ``python MODULE <endpoint options> [extra] listen``; wait for a pong."""
    cmd: list[str | os.PathLike[str]] = [
        python,
        module,
        *endpoint.backend_args(topic),
        *extra_args,
        "listen",
    ]
    peer = PeerProcess(cmd, name=f"{module.stem}@{topic}", cwd=module.parent)
    try:
        wait_for_backend(endpoint, topic, timeout, process=peer)
    except BaseException:
        peer.stop()
        raise
    return peer


def start_dm_backend(
    python: Path,
    endpoint: Endpoint,
    topic: str,
    timeout: float,
    module: Path = PEERS_DIR / "dm_backend.py",
    extra_args: Sequence[str] = (),
) -> PeerProcess:
    """Start a demessaging backend module on ``topic`` and wait until it answers.

    Raises:
        PeerError: it exited or did not answer a ping within ``timeout``.
    """
    return _start_backend(python, endpoint, topic, timeout, module, extra_args)


def start_geo_backend(
    endpoint: Endpoint,
    topic: str,
    timeout: float,
    module: Path = PEERS_DIR / "geo_backend.py",
    extra_args: Sequence[str] = (),
) -> PeerProcess:
    """Start a dasf_geo backend module (our venv) and wait until it answers.

    Raises:
        PeerError: it exited or did not answer a ping within ``timeout``.
    """
    return _start_backend(OUR_PYTHON, endpoint, topic, timeout, module, extra_args)


def generate_dm_stub(
    python: Path,
    endpoint: Endpoint,
    topic: str,
    dest: Path,
    timeout: float,
    module: Path = PEERS_DIR / "dm_backend.py",
    stub_name: str = "dm_stub",
) -> Path:
    """Write demessaging's generated client for ``module`` (pointed at ``endpoint``).

    The stub embeds the broker options it was generated with (but not the
    header), exactly as ``python module.py generate`` does for users.

    Returns:
        The path of the stub module.

    Raises:
        PeerError: ``generate`` failed.
    """
    code = run_peer(
        [python, module, *endpoint.backend_args(topic), "generate"],
        name=f"{module.name} generate",
        timeout=timeout,
        cwd=module.parent,
    )
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{stub_name}.py"
    path.write_text(code, encoding="utf-8")
    return path


def run_dm_client(
    python: Path,
    stub: Path,
    calls: Sequence[Mapping[str, Any]],
    timeout: float,
    header: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run ``calls`` through demessaging's generated client ``stub``.

    Each call is ``{"function": name, "args": {...}}`` or ``{"class": name,
    "init": {...}, "method": name, "args": {...}}``; see
    ``peers/dm_client.py``.

    Returns:
        One dict per call: ``{"ok": True, "result": …, "seconds": …}`` or
        ``{"ok": False, "error_type": …, "error": …}``.

    Raises:
        PeerError: the client process failed or hung past ``timeout`` (the
            demessaging client waits forever on a reply it cannot match).
    """
    spec = {"stub": str(stub), "calls": list(calls), "header": dict(header or {})}
    out = run_peer(
        [python, PEERS_DIR / "dm_client.py", "calls", json.dumps(spec)],
        name="demessaging client",
        timeout=timeout,
        cwd=stub.parent,
    )
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# --------------------------------------------------------------------------
# dasf-broker-django served by daphne


def _http_ok(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class DjangoSite:
    """A throw-away dasf-broker-django site, migrated and served by daphne.

    Args:
        python: interpreter of the dasf-broker-django venv.
        directory: an empty directory to copy the site template into.
        max_message_size: daphne's ``--websocket-max-message-size`` (and
            frame size) in bytes; daphne's own default is 1 MiB.
        redis: ``(url, prefix)`` of a Redis channel layer shared by every
            daphne process of the site (None: the in-memory layer of one
            process). Several ``DjangoSite`` objects on one ``directory``
            with the same ``redis`` are one site served by several daphnes.

    Call :meth:`setup` (copy + migrate), create topics and tokens, then
    :meth:`start`; :meth:`stop` stops daphne.
    """

    def __init__(
        self,
        python: Path,
        directory: Path,
        max_message_size: int = 16 << 20,
        redis: tuple[str, str] | None = None,
    ) -> None:
        if max_message_size <= 0:
            raise PeerError(
                f"max_message_size must be a positive number of bytes, "
                f"not {max_message_size!r}"
            )
        self.python = python
        self.directory = Path(directory)
        self.max_message_size = int(max_message_size)
        self.redis = redis
        self.port: int | None = None
        self.process: PeerProcess | None = None

    @property
    def env(self) -> dict[str, str]:
        """Environment for the site's commands."""
        env = {
            "DJANGO_SETTINGS_MODULE": "interop_site.settings",
            "PYTHONPATH": str(self.directory),
        }
        if self.redis is not None:
            env["INTEROP_CHANNEL_REDIS"], env["INTEROP_CHANNEL_PREFIX"] = self.redis
        return env

    def manage(self, *args: str, timeout: float = 120.0) -> str:
        """Run ``manage.py`` with ``args``; return its stdout.

        Raises:
            PeerError: the command failed; quotes its stderr.
        """
        return run_peer(
            [self.python, self.directory / "manage.py", *args],
            name=f"manage.py {' '.join(args)}",
            timeout=timeout,
            cwd=self.directory,
            env=self.env,
        )

    def setup(self, timeout: float = 120.0) -> None:
        """Copy the template and create the SQLite database."""
        shutil.copytree(DJANGO_SITE_TEMPLATE, self.directory, dirs_exist_ok=True)
        self.manage("migrate", "--no-input", timeout=timeout)

    def create_topic(self, slug: str, anonymous: bool = True) -> None:
        """Create a topic (``dasf_topic SLUG --new [--anonymous]``)."""
        args = ["dasf_topic", slug, "--new"]
        if anonymous:
            args.append("--anonymous")
        self.manage(*args)

    def create_token(self, username: str, topics: Sequence[str]) -> str:
        """Create ``username`` with a token allowed to produce to and consume
        from ``topics`` (created if missing); return the token key."""
        out = self.manage("interop_access", username, *topics)
        return out.strip().splitlines()[-1]

    def topic_api_info(self, slug: str) -> dict[str, Any] | None:
        """The API the broker recorded for topic ``slug`` (``{}`` if none yet).

        dasf-broker-django asks a backend for ``api_info`` when it connects
        to an empty topic; the answer arrives on ``status-ping``.

        Raises:
            PeerError: the topic does not exist.
        """
        code = (
            "import json, sys\n"
            "from dasf_broker.models import BrokerTopic\n"
            "topic = BrokerTopic.objects.filter(slug=sys.argv[-1]).first()\n"
            "print(json.dumps('missing' if topic is None else topic.api_info))\n"
        )
        out = run_peer(
            [self.python, "-c", f"import django; django.setup()\n{code}", slug],
            name=f"reading the api_info of topic {slug!r}",
            timeout=60.0,
            cwd=self.directory,
            env=self.env,
        )
        value = json.loads(out.strip().splitlines()[-1])
        if value == "missing":
            raise PeerError(f"topic {slug!r} does not exist on the Django site")
        return value  # type: ignore[no-any-return]

    @property
    def websocket_url(self) -> str:
        """The plain-layout websocket URL (``ws://127.0.0.1:PORT/ws``)."""
        if self.port is None:
            raise PeerError("the Django site is not started: call start() first")
        return f"ws://127.0.0.1:{self.port}/ws"

    def endpoint(self, token: str | None = None) -> Endpoint:
        """An :class:`Endpoint` for this site, with a token header if given."""
        header = {"authorization": f"Token {token}"} if token else {}
        return Endpoint("plain", self.websocket_url, header)

    def start(self, timeout: float = 60.0) -> None:
        """Serve the site with daphne on 127.0.0.1 and wait until it answers HTTP.

        Raises:
            PeerError: daphne exited or did not answer within ``timeout``.
        """
        for _attempt in range(3):
            port = free_port()
            daphne = self.python.parent / "daphne"
            proc = PeerProcess(
                [
                    daphne,
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--websocket-max-message-size",
                    str(self.max_message_size),
                    "--websocket-max-frame-size",
                    str(self.max_message_size),
                    "interop_site.asgi:application",
                ],
                name=f"daphne:{port}",
                cwd=self.directory,
                env=self.env,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.alive:
                if _http_ok(f"http://127.0.0.1:{port}/health/", timeout=1.0):
                    self.port, self.process = port, proc
                    return
                time.sleep(0.1)
            output = proc.describe()
            proc.stop()
            proc.cleanup()
            if "Address already in use" not in output:
                raise PeerError(
                    f"daphne did not serve the Django site within {timeout:g} s\n"
                    f"{output}"
                )
        raise PeerError("daphne could not bind a free port after 3 attempts")

    def stop(self) -> None:
        """Stop daphne."""
        if self.process is not None:
            self.process.stop()
            self.process.cleanup()
            self.process = None


def b64json(value: Any) -> str:
    """Base64 of the UTF-8 JSON of ``value`` (a DASF request payload)."""
    return base64.b64encode(json.dumps(value).encode()).decode()


def raw_request(
    endpoint: Endpoint,
    topic: str,
    request: Any,
    timeout: float,
    message_type: str = "request",
) -> tuple[list[dict[str, Any]], float]:
    """Send one DASF request with a bare WebSocket client; collect the reply.

    No DASF library is involved on this side: the request is the JSON of
    ``request`` in base64, the reply messages are returned as the broker
    pushed them (all fragments of a fragmented reply, in arrival order).

    Returns:
        The reply messages and the seconds from sending to the last one.

    Raises:
        PeerError: no complete reply within ``timeout`` seconds.
    """
    response_topic = f"{topic}_raw{secrets.token_hex(8)}"
    context = secrets.randbelow(2**31)
    deadline = time.monotonic() + timeout
    replies: list[dict[str, Any]] = []
    with (
        _ws_connect(
            endpoint.topic_url(response_topic, "raw"), endpoint.header, timeout
        ) as consumer,
        _ws_connect(endpoint.topic_url(topic), endpoint.header, timeout) as producer,
    ):
        payload = b64json(request) if message_type == "request" else ""
        start = time.perf_counter()
        producer.send(
            json.dumps(
                {
                    "payload": payload,
                    "properties": {
                        "messageType": message_type,
                        "requestContext": context,
                        "response_topic": response_topic,
                    },
                    "context": str(context),
                }
            )
        )
        ack = json.loads(producer.recv(timeout=timeout))
        if ack.get("result") != "ok":
            raise PeerError(f"the broker refused the request to {topic!r}: {ack}")
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = json.loads(consumer.recv(timeout=left))
            except TimeoutError:
                break
            consumer.send(json.dumps({"messageId": msg["messageId"]}))
            props = msg.get("properties") or {}
            if str(props.get("requestContext")) != str(context):
                continue
            if props.get("messageType") == "progress":
                continue
            replies.append(msg)
            total = props.get("num_fragments")
            if total is None or len(replies) >= int(total):
                return replies, time.perf_counter() - start
    raise PeerError(
        f"no complete reply from topic {topic!r} within {timeout:g} s "
        f"({len(replies)} messages received)"
    )


def join_reply(replies: Sequence[Mapping[str, Any]]) -> bytes:
    """The payload bytes of a (possibly fragmented) reply, as the reference
    joins it: base64 pieces in ``fragment`` order, decoded once."""
    ordered = sorted(replies, key=lambda m: int(m["properties"].get("fragment", 0)))
    return base64.b64decode("".join(m["payload"] for m in ordered))
