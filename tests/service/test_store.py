"""The monitoring store on SQLite files and on a real PostgreSQL server."""

from __future__ import annotations

import json
import logging
import sqlite3
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dasf_geo.service.monitor_db import (
    MAX_VALUE_BYTES,
    MonitorStore,
    StoreError,
    summarize,
    to_csv,
)


def make(store_url, name="svc", version="1.0.0", **kw) -> MonitorStore:
    return MonitorStore(name, version, url=store_url, **kw).open()


def test_numbers_strings_and_json_round_trip(store_url):
    store = make(store_url)
    store.record({"n": 3, "x": 2.5, "s": "text", "d": {"a": [1, None]}, "b": True})
    store.record({"n": np.int64(4), "nan": float("nan")})
    rows = store.query()
    values = [(r["variable"], r["value"]) for r in rows]
    assert values == [
        ("n", 3.0),
        ("x", 2.5),
        ("s", "text"),
        ("d", {"a": [1, None]}),
        ("b", True),
        ("n", 4.0),
        ("nan", "nan"),
    ]
    assert all(r["timestamp"].endswith("+00:00") for r in rows)
    store.close()


def test_filter_by_variable_and_time(store_url):
    store = make(store_url)
    store.record({"a": 1, "b": 2}, timestamp=1_000_000_000.0)  # 2001-09-09
    store.record({"a": 3}, timestamp=1_700_000_000.0)  # 2023-11-14
    assert [r["value"] for r in store.query(["a"])] == [1.0, 3.0]
    assert [r["value"] for r in store.query(start="2020-01-01")] == [3.0]
    assert [r["value"] for r in store.query(end="2001-09-09T01:46:40Z")] == [1.0, 2.0]
    assert store.query(["zzz"]) == []
    assert [r["value"] for r in store.query(limit=1)] == [3.0]
    store.close()


def test_services_and_versions_share_one_database(postgres_url):
    one = make(postgres_url, "one", "1.0.0")
    two = make(postgres_url, "one", "1.1.0")
    one.record({"x": 1})
    two.record({"x": 2})
    assert [r["value"] for r in one.query()] == [1.0]
    assert [r["value"] for r in two.query()] == [2.0]
    one.close()
    two.close()


def test_retention_by_rows(store_url):
    store = make(store_url, limit="2 rows")
    for i in range(5):
        store.record({"a": i, "b": -i})
    assert store.clean() == 6
    assert [(r["variable"], r["value"]) for r in store.query()] == [
        ("a", 3.0),
        ("b", -3.0),
        ("a", 4.0),
        ("b", -4.0),
    ]
    assert store.clean() == 0
    store.close()


def test_retention_by_time(store_url):
    store = make(store_url, limit="2 hours")
    now = time.time()
    store.record({"old": 1}, timestamp=now - 3 * 3600)
    store.record({"new": 2}, timestamp=now - 3600)
    assert store.clean(now) == 1
    assert [r["variable"] for r in store.query()] == ["new"]
    store.close()


@pytest.mark.parametrize(
    "limit", ["90 weeks", "-1 rows", "0 days", "days", "1.5 hours"]
)
def test_invalid_retention_names_the_units(limit):
    with pytest.raises(ValueError) as info:
        MonitorStore("svc", "1", limit=limit)
    assert str(info.value) == (
        f"invalid limit {limit!r}: expected a positive whole number and one of the "
        "units rows, days, hours, minutes, seconds (e.g. '90 rows')"
    )


def test_datasets_are_stored_as_summaries(store_url):
    ds = xr.Dataset(
        {"t": (("y", "x"), np.arange(6.0).reshape(2, 3))},
        coords={"x": [1, 2, 3], "y": [0, 1]},
    )
    frame = pd.DataFrame({"a": [1, 2]})
    store = make(store_url)
    store.record({"ds": ds, "df": frame, "arr": np.zeros((2, 2), "f4")})
    rows = {r["variable"]: r["value"] for r in store.query()}
    assert rows["ds"] == summarize(ds)
    assert rows["ds"]["dims"] == {"y": 2, "x": 3}
    assert rows["ds"]["variables"] == ["t"]
    assert rows["ds"]["checksum"].startswith("blake2b:")
    assert rows["df"]["columns"] == ["a"] and rows["df"]["shape"] == [2, 1]
    assert rows["arr"] == {
        "type": "numpy.ndarray",
        "shape": [2, 2],
        "dtype": "float32",
        "checksum": summarize(np.zeros((2, 2), "f4"))["checksum"],
    }
    # a changed value changes the checksum
    assert summarize(ds + 1)["checksum"] != rows["ds"]["checksum"]
    store.close()


def test_unserialisable_value_is_stored_as_repr_and_logged_once(tmp_path, caplog):
    class Thing:
        def __repr__(self) -> str:
            return "<Thing 7>"

    store = make(None, path=tmp_path / "s.sqlite")
    with caplog.at_level(logging.WARNING, "dasf_geo.service.monitor_db"):
        store.record({"thing": Thing()})
        store.record({"thing": Thing()})
    assert [r["value"] for r in store.query()] == ["<Thing 7>", "<Thing 7>"]
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "store: thing of type Thing cannot be written as JSON (Thing is not JSON "
        "serialisable); storing its repr"
    ]


def test_hostile_names_and_sizes(tmp_path):
    store = make(None, path=tmp_path / "s.sqlite")
    with pytest.raises(StoreError) as info:
        store.record({"x": "a" * (MAX_VALUE_BYTES + 1)})
    assert str(info.value) == (
        f"the value of 'x' is {MAX_VALUE_BYTES + 1} bytes as string, above the "
        f"store's limit of {MAX_VALUE_BYTES} bytes per value; store a summary of it "
        "instead"
    )
    with pytest.raises(StoreError) as info:
        store.record({"n" * 201: 1})
    assert str(info.value).startswith("invalid variable name 'nnnn")
    assert str(info.value).endswith("use a non-empty text of at most 200 characters")
    with pytest.raises(ValueError) as info:
        store.query(start="yesterday")
    assert str(info.value) == (
        "start must be an ISO 8601 date or time such as '2026-01-31T12:00:00Z', got "
        "'yesterday'"
    )
    assert store.query() == []  # nothing of it was stored


def test_read_only_database_is_a_clear_error(tmp_path):
    # as root, chmod does not stop writes: open SQLite itself read-only
    path = tmp_path / "ro.sqlite"
    make(None, path=path).close()
    store = MonitorStore("svc", "1.0.0", path=path)
    store.url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with pytest.raises(StoreError) as info:
        store.record({"x": 1})
    assert str(info.value) == (
        f"cannot write to the monitoring store {path}: attempt to write a readonly "
        "database"
    )


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    store = MonitorStore("svc", "1.0.0", path=path)
    with pytest.raises(StoreError) as info:
        store.open()
    assert str(info.value) == (
        f"cannot open the monitoring store {path}: file is not a database"
    )


def test_file_deleted_while_running_is_recreated(tmp_path, caplog):
    path = tmp_path / "s.sqlite"
    store = make(None, path=path)
    store.record({"x": 1})
    path.unlink()
    with caplog.at_level(logging.WARNING, "dasf_geo.service.monitor_db"):
        store.record({"x": 2})
    assert [r["value"] for r in store.query()] == [2.0]
    assert path.exists()
    assert caplog.records[0].getMessage() == (
        f"the monitoring store {path} was deleted; starting a new one"
    )


def test_sqlite_bytes_is_a_readable_copy(tmp_path):
    store = make(None, path=tmp_path / "s.sqlite")
    store.record({"x": 1})
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(store.sqlite_bytes())
    with sqlite3.connect(copy) as conn:
        rows = conn.execute("select variable, number from dasf_geo_monitor").fetchall()
    assert rows == [("x", 1.0)]


def test_sqlite_bytes_of_postgresql_is_refused(postgres_url):
    store = make(postgres_url)
    with pytest.raises(
        StoreError, match="is not a SQLite file; read it as JSON or CSV"
    ):
        store.sqlite_bytes()


def test_unreachable_server_is_a_clear_error():
    store = MonitorStore(
        "svc", "1", url="postgresql+psycopg://postgres@127.0.0.1:1/nothing"
    )
    with pytest.raises(StoreError) as info:
        store.open()
    assert str(info.value).startswith(
        "cannot open the monitoring store postgresql+psycopg://postgres@127.0.0.1:1/"
        "nothing: "
    )


def test_csv():
    text = to_csv(
        [
            {"variable": "a", "value": 1.0, "timestamp": "T1"},
            {"variable": "b", "value": {"k": [1]}, "timestamp": "T2"},
            {"variable": "c", "value": "x,y", "timestamp": "T3"},
        ]
    )
    assert text == (
        'variable,value,timestamp\na,1.0,T1\nb,"{""k"": [1]}",T2\nc,"x,y",T3\n'
    )
    assert json.loads('{"k": [1]}') == {"k": [1]}
