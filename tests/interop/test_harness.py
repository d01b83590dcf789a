"""The interop harness itself: venv cache, locking, peer processes, endpoints.

These run without the reference packages (fast, no network): the venvs
built here have no requirements or a requirement pip rejects locally.
"""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.conftest import free_port, timeout
from tests.interop import peers

pytestmark = pytest.mark.interop


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty peer cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("DASF_GEO_PEER_CACHE", str(root))
    return root


def test_cache_root_follows_the_environment(cache, monkeypatch):
    assert peers.cache_root() == cache
    monkeypatch.delenv("DASF_GEO_PEER_CACHE")
    assert peers.cache_root() == peers.Path.home() / ".cache/dasf_geo/peers"


def test_unknown_peer_names_list_the_known_ones(cache):
    with pytest.raises(peers.PeerError) as info:
        peers.peer_python("pulsar")
    assert str(info.value) == (
        "unknown peer 'pulsar': known peers are dasf-broker-django, demessaging; "
        "pass requirements=[...] to build another environment"
    )


@pytest.mark.parametrize("name", ["", "../evil", "a/b", "x y", "naïve;rm"])
def test_hostile_peer_names_are_refused(cache, name):
    with pytest.raises(peers.PeerError) as info:
        peers.peer_python(name, requirements=[])
    assert str(info.value) == (
        f"invalid peer name {name!r}: use letters, digits, '-', '_' or '.'"
    )
    assert not cache.exists()


def test_a_requirement_string_instead_of_a_list_is_refused(cache):
    with pytest.raises(peers.PeerError) as info:
        peers.peer_python("x", requirements="demessaging==0.6.4")  # type: ignore[arg-type]
    assert str(info.value) == (
        "requirements for peer 'x' must be a list of strings, "
        "not the string 'demessaging==0.6.4'"
    )


def test_the_hash_depends_on_requirements_and_interpreter(cache):
    a = peers.venv_dir("p", ["a==1"])
    assert a == peers.venv_dir("p", ["a==1"])
    assert a != peers.venv_dir("p", ["a==2"])
    assert a.parent == cache
    assert a.name.startswith("p-")


@pytest.mark.slow
def test_a_venv_is_built_once_then_reused_and_rebuilt_when_half_built(cache):
    python = peers.peer_python("empty", requirements=[])
    venv = python.parent.parent
    assert peers.is_complete(venv)
    marker = venv / peers.COMPLETE_MARKER
    assert json.loads(marker.read_text())["requirements"] == []
    built = marker.stat().st_mtime_ns
    # Warm cache: nothing is rebuilt.
    assert peers.peer_python("empty", requirements=[]) == python
    assert marker.stat().st_mtime_ns == built
    # A build that died before writing its marker is started over.
    marker.unlink()
    leftover = venv / "half-built-leftover"
    leftover.write_text("x")
    assert peers.peer_python("empty", requirements=[]) == python
    assert marker.exists()
    assert not leftover.exists()


@pytest.mark.slow
def test_a_failing_install_quotes_pip_and_leaves_no_marker(cache):
    with pytest.raises(peers.PeerError) as info:
        peers.peer_python("broken", requirements=["./no-such-dir-xyz"])
    text = str(info.value)
    assert "pip install ./no-such-dir-xyz into " in text
    assert "failed with exit code 1; output:" in text
    assert "ERROR: Invalid requirement: './no-such-dir-xyz'" in text
    venv = peers.venv_dir("broken", ["./no-such-dir-xyz"])
    assert not peers.is_complete(venv)


def test_concurrent_builders_build_once(cache, monkeypatch):
    builds: list[float] = []

    def fake_build(path, requirements, python=peers.OUR_PYTHON, timeout=0.0):
        builds.append(time.monotonic())
        time.sleep(0.3)  # long enough for the others to queue on the lock
        (path / "bin").mkdir(parents=True)
        (path / "bin" / "python").write_text("")
        (path / peers.COMPLETE_MARKER).write_text("{}")

    monkeypatch.setattr(peers, "build_venv", fake_build)
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(peers.peer_python("raced", ["a==1"]))
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout(30))
    assert len(builds) == 1
    assert len(set(results)) == 1 and len(results) == 4


def test_a_held_lock_times_out_with_a_clear_message(cache):
    lock = cache / "held.lock"
    with (
        peers.file_lock(lock),
        pytest.raises(peers.PeerError) as info,
        peers.file_lock(lock, 0.3),
    ):
        pass
    assert str(info.value) == (
        f"could not lock {lock} within 0.3 s: another process is building this "
        "peer environment; wait for it or remove the lock file if no build is "
        "running"
    )


# --------------------------------------------------------------------------
# processes


def test_a_peer_process_is_stopped_and_its_output_kept(tmp_path):
    code = "import sys, time; print('hello from the peer', flush=True); time.sleep(60)"
    peer = peers.PeerProcess([peers.OUR_PYTHON, "-c", code], name="sleeper")
    deadline = time.monotonic() + timeout(10)
    while "hello from the peer" not in peer.output():
        assert time.monotonic() < deadline, peer.describe()
        time.sleep(0.05)
    assert peer.alive
    assert peer.stop() == -15  # SIGTERM
    assert not peer.alive
    assert "hello from the peer" in peer.describe()
    peer.cleanup()


def test_a_dead_peer_is_reported_with_its_output():
    code = "import sys; sys.exit('the peer gave up: no broker')"
    with peers.PeerProcess([peers.OUR_PYTHON, "-c", code], name="quitter") as peer:
        peer.proc.wait(timeout(10))
        with pytest.raises(peers.PeerError) as info:
            peer.check_alive()
    text = str(info.value)
    assert text.startswith("peer quitter (exited with 1; command: ")
    assert "the peer gave up: no broker" in text
    assert text.endswith("the peer exited unexpectedly")


def test_run_peer_quotes_stderr_and_enforces_its_timeout():
    with pytest.raises(peers.PeerError) as info:
        peers.run_peer(
            [peers.OUR_PYTHON, "-c", "import sys; sys.exit('bad stub')"],
            name="client",
            timeout=timeout(10),
        )
    assert str(info.value).startswith("client failed with exit code 1; stderr:\n")
    assert "bad stub" in str(info.value)
    with pytest.raises(peers.PeerError) as info:
        peers.run_peer(
            [peers.OUR_PYTHON, "-c", "import time; time.sleep(30)"],
            name="hanging client",
            timeout=0.5,
        )
    assert str(info.value).startswith(
        "hanging client did not finish within 0.5 s; stderr:"
    )


def test_output_tails_are_cut_from_the_front():
    assert peers.tail("abc", 5) == "abc"
    assert peers.tail("0123456789", 4) == "[…]6789"


# --------------------------------------------------------------------------
# endpoints and readiness


def test_endpoints_build_both_url_layouts_and_peer_options():
    pulsar = peers.Endpoint("pulsar", "ws://127.0.0.1:8080/")
    assert pulsar.topic_url("t") == (
        "ws://127.0.0.1:8080/ws/v2/producer/non-persistent/public/default/t"
    )
    assert pulsar.topic_url("t", "s") == (
        "ws://127.0.0.1:8080/ws/v2/consumer/non-persistent/public/default/t/s"
    )
    assert pulsar.backend_args("t") == ["-t", "t", "-H", "127.0.0.1", "-p", "8080"]
    plain = peers.Endpoint("plain", "ws://h:1/ws", {"authorization": "Token k"})
    assert plain.topic_url("t", "s") == "ws://h:1/ws/t/s"
    assert plain.backend_args("t") == [
        "-t",
        "t",
        "--websocket-url",
        "ws://h:1/ws",
        "--header",
        '{"authorization": "Token k"}',
    ]
    config = plain.config("t")
    assert config.topic == "t"
    assert config.header == {"authorization": "Token k"}
    assert config.get_topic_url("t") == "ws://h:1/ws/t"


@pytest.mark.parametrize(
    ("layout", "base", "message"),
    [
        ("kafka", "ws://h:1", "unknown URL layout 'kafka': use 'pulsar' or 'plain'"),
        (
            "pulsar",
            "http://h:1",
            "broker URL 'http://h:1' must start with ws:// or wss://",
        ),
        ("plain", "", "broker URL '' must start with ws:// or wss://"),
    ],
)
def test_bad_endpoints_are_refused(layout, base, message):
    with pytest.raises(peers.PeerError) as info:
        peers.Endpoint(layout, base)
    assert str(info.value) == message


def test_waiting_for_a_backend_on_a_dead_broker_names_the_topic():
    port = free_port()
    endpoint = peers.Endpoint("pulsar", f"ws://127.0.0.1:{port}")
    with pytest.raises(peers.PeerError) as info:
        peers.wait_for_backend(endpoint, "nobody-home", timeout=0.5)
    text = str(info.value)
    assert text.startswith(
        "no pong from a backend on topic 'nobody-home' "
        f"(ws://127.0.0.1:{port}/ws/v2/producer/non-persistent/public/default/"
        "nobody-home) within 0.5 s; last connection error:"
    )


def test_waiting_for_a_backend_that_died_quotes_its_output():
    code = "import sys; sys.exit('cannot import the module')"
    endpoint = peers.Endpoint("pulsar", f"ws://127.0.0.1:{free_port()}")
    with peers.PeerProcess([peers.OUR_PYTHON, "-c", code], name="backend") as peer:
        peer.proc.wait(timeout(10))
        with pytest.raises(peers.PeerError) as info:
            peers.wait_for_backend(endpoint, "t", timeout(10), process=peer)
    assert "cannot import the module" in str(info.value)
    assert "the peer exited unexpectedly" in str(info.value)


def test_waiting_for_a_backend_gets_no_pong_from_an_empty_topic(our_broker):
    with pytest.raises(peers.PeerError) as info:
        peers.wait_for_backend(our_broker, "empty-topic", timeout=1.0)
    assert str(info.value) == (
        "no pong from a backend on topic 'empty-topic' "
        f"({our_broker.topic_url('empty-topic')}) within 1 s"
    )


def test_the_django_site_refuses_a_bad_message_limit(tmp_path):
    with pytest.raises(peers.PeerError) as info:
        peers.DjangoSite(peers.OUR_PYTHON, tmp_path, max_message_size=0)
    assert str(info.value) == (
        "max_message_size must be a positive number of bytes, not 0"
    )
    site = peers.DjangoSite(peers.OUR_PYTHON, tmp_path)
    with pytest.raises(peers.PeerError) as info:
        _ = site.websocket_url
    assert str(info.value) == "the Django site is not started: call start() first"


def test_requests_are_base64_json():
    assert peers.b64json({"func_name": "hello_world"}) == (
        "eyJmdW5jX25hbWUiOiAiaGVsbG9fd29ybGQifQ=="
    )
