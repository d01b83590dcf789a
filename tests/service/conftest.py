"""Fixtures of the service tests: a broker, store folders, PostgreSQL, SMTP."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import xarray as xr

import dasf_geo
from dasf_geo.service import Service
from tests.conftest import timeout

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def broker() -> Iterator[Any]:
    """An embedded broker on a free port of 127.0.0.1."""
    from dasf_geo.broker import EmbeddedBroker
    from dasf_geo.service.communication import close_connections
    from dasf_geo.transport.client import close_clients

    with EmbeddedBroker(host="127.0.0.1", port=0) as b:
        yield b
        close_connections()
        close_clients()


@pytest.fixture(autouse=True)
def store_dir(tmp_path, monkeypatch):
    """Every service's default SQLite store lives in the test's folder."""
    folder = tmp_path / "store"
    monkeypatch.setenv("DASF_GEO_STORE_DIR", str(folder))
    for name in (
        "DASF_GEO_STORE_URL",
        "DASF_GEO_STORE_PATH",
        "DASF_GEO_STORE_LIMIT",
        "DASF_GEO_STORE_CLEAN_INTERVAL",
        "DASF_GEO_BROKER_URL",
        "DASF_GEO_SERVICE_NAME",
        "DASF_GEO_SERVICE_VERSION",
        "DASF_GEO_SMTP_HOST",
        "DE_BACKEND_HOST",
        "DE_BACKEND_PORT",
    ):
        monkeypatch.delenv(name, raising=False)
    return folder


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database of its own, dropped afterwards."""
    sa = pytest.importorskip("sqlalchemy")
    pytest.importorskip("psycopg", reason="PostgreSQL driver psycopg not installed")
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server answers at 127.0.0.1:5432: {exc}")
    name = f"dasf_geo_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str | None]:
    """None (the default SQLite file) and a PostgreSQL URL, in turn."""
    if request.param == "sqlite":
        yield None
    else:
        yield request.getfixturevalue("postgres_url")


class SMTPSink:
    """A real SMTP server (aiosmtpd) on a free port; keeps what it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        self.received = threading.Event()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                sink.messages.append(envelope)
                sink.received.set()
                return "250 Message accepted for delivery"

            async def handle_RCPT(
                self, server, session, envelope, address, rcpt_options
            ):
                if address.endswith("@refused.invalid"):
                    return "550 no such user here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

        from tests.conftest import free_port

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SMTPSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture
def smtp(monkeypatch) -> Iterator[SMTPSink]:
    """A local SMTP server, configured through DASF_GEO_SMTP_*."""
    pytest.importorskip("aiosmtpd")
    with SMTPSink() as sink:
        monkeypatch.setenv("DASF_GEO_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("DASF_GEO_SMTP_PORT", str(sink.port))
        monkeypatch.setenv("DASF_GEO_SMTP_FROM", "monitor@dasf-geo.invalid")
        yield sink


@pytest.fixture
def make_service() -> Iterator[Any]:
    """``make_service(name, version)``: a fresh Service, stopped afterwards."""
    made: list[Service] = []

    def make(name: str, version: str = "1.0.0") -> Service:
        svc = Service(name, version)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.stop()


class Records(logging.Handler):
    """Collects log records (for messages logged from threads)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= level]


@pytest.fixture
def logs() -> Iterator[Records]:
    """Log records of dasf_geo.service.*, from any thread."""
    handler = Records()
    logger = logging.getLogger("dasf_geo.service")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def small_dataset(value: float = 1.0) -> xr.Dataset:
    ds = xr.Dataset(
        {"tas": (("lat", "lon"), np.full((2, 3), value, "f4"), {"units": "K"})},
        coords={"lat": [10.0, 20.0], "lon": [0.0, 10.0, 20.0]},
    )
    ds["lat"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    ds["lon"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    ds["tas"].attrs["standard_name"] = "air_temperature"
    ds.attrs["Conventions"] = "CF-1.8"
    return ds


@pytest.fixture
def weather(broker, make_service):
    """A service 'weather' 1.0.0 with a parameter and monitored entrypoints."""
    svc = make_service("weather", "1.0.0")
    svc.add_parameter("threshold", 280.0)
    svc.add_parameter("secret", "s3", expose=False)
    svc.add_parameter("unit", "K", monitor=True)

    @svc.entrypoint(monitor=True)
    def above(value: float) -> bool:
        """Is ``value`` above the threshold?"""
        return value > svc.get_parameter("threshold")

    @svc.entrypoint(method="GET", monitor=True)
    def field(value: float = 1.0) -> xr.Dataset:
        """A small field."""
        return small_dataset(value)

    @svc.entrypoint
    async def version() -> str:
        """The version that answers."""
        return svc.version

    @svc.entrypoint
    def fail() -> int:
        raise RuntimeError("the sensor is offline")

    svc.start(broker=broker.url)
    return svc


@pytest.fixture
def client(broker, weather):
    with dasf_geo.connect("weather", broker.url, timeout=timeout(20)) as svc:
        yield svc
