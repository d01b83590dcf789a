"""``dasf-geo call``: files as arguments, readable results, -o, messages.

A small module is served from this process (BackgroundListener) on an
embedded broker; ``dasf-geo call`` runs in this process too, its output
captured.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from dasf_geo import BackendModule
from dasf_geo.broker import EmbeddedBroker
from dasf_geo.cli import tool
from dasf_geo.transport.backend import BackgroundListener
from tests.conftest import free_port, timeout

TOPIC = "cli-tools"
CALLS: list[str] = []


def table(rows: int = 30) -> pd.DataFrame:
    """A table of ``rows`` rows."""
    CALLS.append("table")
    return pd.DataFrame({"x": range(rows), "y": [i * 0.5 for i in range(rows)]})


def scale(ds: xr.Dataset, factor: float = 2.0) -> xr.Dataset:
    """Multiply every variable."""
    CALLS.append("scale")
    return ds * factor


def first(da: xr.DataArray) -> float:
    """The first value of an array."""
    return float(da.values.flat[0])


def total(df: pd.DataFrame) -> float:
    """The sum of column ``y``."""
    return float(df["y"].sum())


def asum(a: np.ndarray) -> float:
    """The sum of an array."""
    return float(a.sum())


def ones(n: int) -> np.ndarray:
    """``n`` ones."""
    return np.ones(n)


def keys(mapping: dict) -> list:
    """The keys of a mapping, sorted."""
    return sorted(mapping)


MEMBERS = [table, scale, first, total, asum, ones, keys]


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker(host="127.0.0.1", port=0) as running:
        module = BackendModule.create_model(
            members=MEMBERS,
            messaging_config=dict(topic=TOPIC, host="127.0.0.1", port=running.port),
        )
        listener = BackgroundListener(module).start(timeout(30))
        try:
            yield running.url
        finally:
            listener.stop()


@pytest.fixture
def dataset():
    return xr.Dataset(
        {"t": (("x",), np.array([1.0, 2.0, 3.0], dtype="float32"))},
        attrs={"Conventions": "CF-1.8"},
    )


def call(capsys, broker, *args: str) -> tuple[int, str, str]:
    status = tool.main(["call", TOPIC, *args, "--broker", broker])
    out, err = capsys.readouterr()
    return status, out, err


# ------------------------------------------------------------ files as arguments


def test_netcdf_file_argument(capsys, broker, dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dataset.to_netcdf("in.nc")
    status, _, err = call(
        capsys, broker, "scale", "ds=@in.nc", "factor=10", "-o", "o.nc"
    )
    assert (status, err) == (0, "wrote Dataset to o.nc\n")
    assert xr.load_dataset("o.nc")["t"].values.tolist() == [10.0, 20.0, 30.0]


def test_netcdf_file_as_a_dataarray(capsys, broker, dataset, tmp_path):
    dataset.to_netcdf(tmp_path / "in.nc")
    status, out, _ = call(capsys, broker, "first", f"da=@{tmp_path / 'in.nc'}")
    assert (status, out) == (0, "1.0\n")


def test_dataarray_file_must_hold_one_variable(capsys, broker, dataset, tmp_path):
    dataset.assign(u=dataset["t"]).to_netcdf(tmp_path / "two.nc")
    status, _, err = call(capsys, broker, "first", f"da=@{tmp_path / 'two.nc'}")
    assert status == 1
    assert err == (
        f"error: {tmp_path / 'two.nc'} holds 2 variables (t, u); a DataArray "
        "argument needs a file with exactly one\n"
    )


def test_csv_parquet_npy_and_json_files(capsys, broker, tmp_path):
    frame = table(4)
    frame.to_csv(tmp_path / "t.csv")  # with its index, as to_csv writes it
    frame.to_parquet(tmp_path / "t.parquet")
    np.save(tmp_path / "a.npy", np.arange(5.0))
    (tmp_path / "m.json").write_text('{"b": 1, "a": 2}')
    assert call(capsys, broker, "total", f"df=@{tmp_path / 't.csv'}")[1] == "3.0\n"
    assert call(capsys, broker, "total", f"df=@{tmp_path / 't.parquet'}")[1] == "3.0\n"
    assert call(capsys, broker, "asum", f"a=@{tmp_path / 'a.npy'}")[1] == "10.0\n"
    out = call(capsys, broker, "keys", f"mapping=@{tmp_path / 'm.json'}")[1]
    assert json.loads(out) == ["a", "b"]


def test_wrapped_base64_is_accepted(capsys, broker, dataset, tmp_path):
    dataset.to_netcdf(tmp_path / "in.nc")
    wrapped = base64.encodebytes((tmp_path / "in.nc").read_bytes()).decode()
    assert "\n" in wrapped.strip()
    status, out, _ = call(capsys, broker, "first", f"da={wrapped}")
    assert (status, out) == (0, "1.0\n")


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        (
            "ds=data.nc",
            "ds='data.nc' looks like a file name; write ds=@data.nc to send the file",
        ),
        ("ds=@missing.nc", "ds=@missing.nc: no such file"),
        (
            "ds=@notes.txt",
            "ds=@notes.txt: unknown kind of file .txt; give one of "
            ".nc, .nc4, .netcdf, .zarr, .csv, .parquet, .npy, .json",
        ),
        (
            "ds=@t.csv",
            "ds=@t.csv: a CSV file does not fit ds, which takes Dataset "
            "(give a NetCDF (.nc) or Zarr (.zarr) file)",
        ),
    ],
)
def test_bad_file_arguments(capsys, broker, tmp_path, monkeypatch, argument, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    table(2).to_csv(tmp_path / "t.csv")
    CALLS.clear()
    status, out, err = call(capsys, broker, "scale", argument)
    assert (status, out, err) == (1, "", f"error: {message}\n")
    assert CALLS == []


def test_hostile_files_are_refused_with_a_message(capsys, broker, tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "junk.nc").write_bytes(b"\x00" * 1000)
    (tmp_path / "junk.csv").write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = call(capsys, broker, "asum", f"a=@{tmp_path / 'obj.npy'}")
    assert status == 1
    assert err.startswith(
        f"error: a=@{tmp_path / 'obj.npy'}: cannot read the NumPy .npy file: "
        "ValueError: Object arrays cannot be loaded when allow_pickle=False"
    )
    status, _, err = call(capsys, broker, "scale", f"ds=@{tmp_path / 'junk.nc'}")
    assert status == 1
    assert err.startswith(
        f"error: ds=@{tmp_path / 'junk.nc'}: cannot read the NetCDF file: "
    )
    status, _, err = call(capsys, broker, "total", f"df=@{tmp_path / 'junk.csv'}")
    assert status == 1
    assert err.startswith(f"error: df=@{tmp_path / 'junk.csv'}: cannot read the CSV")


# -------------------------------------------------------------- printed results


def test_dataframe_prints_as_a_table_with_head_and_tail(capsys, broker):
    status, out, _ = call(capsys, broker, "table", "--text")
    lines = out.splitlines()
    assert status == 0
    assert lines[0].split() == ["x", "y"]
    assert lines[1].split() == ["0", "0", "0.0"]
    assert "..." in out and lines[-1] == "[30 rows x 2 columns]"
    assert lines[-3].split() == ["29", "29", "14.5"]


def test_dataset_and_array_print_as_xarray_and_numpy_do(
    capsys, broker, dataset, tmp_path
):
    dataset.to_netcdf(tmp_path / "in.nc")
    out = call(capsys, broker, "scale", f"ds=@{tmp_path / 'in.nc'}", "--text")[1]
    assert out.startswith("<xarray.Dataset>")
    assert "Data variables:" in out
    out = call(capsys, broker, "ones", "n=3", "--text")[1]
    assert out == "[1. 1. 1.]\n"


def test_raw_and_pipes_get_json(capsys, broker):
    out = call(capsys, broker, "table", "rows=2", "--raw")[1]
    assert json.loads(out)["format"] == "dasf-frame/1"
    out = call(capsys, broker, "table", "rows=2")[1]  # stdout is not a terminal
    assert json.loads(out)["format"] == "dasf-frame/1"


# --------------------------------------------------------------------------- -o


def test_output_extension_must_fit_before_the_call(capsys, broker, tmp_path, dataset):
    dataset.to_netcdf(tmp_path / "in.nc")
    CALLS.clear()
    status, _, err = call(
        capsys, broker, "scale", f"ds=@{tmp_path / 'in.nc'}", "-o", "x.csv"
    )
    assert status == 1
    assert err == (
        "error: -o x.csv: the result is a Dataset, written as NetCDF (.nc) or "
        "Zarr (.zarr), not .csv\n"
    )
    status, _, err = call(capsys, broker, "table", "-o", "x.nc")
    assert err == (
        "error: -o x.nc: the result is a DataFrame, written as CSV (.csv), "
        "Parquet (.parquet) or JSON (.json), not .nc\n"
    )
    status, _, err = call(capsys, broker, "keys", "mapping={}", "-o", "k.csv")
    assert (
        err == "error: -o k.csv: the result is list[Any], written as JSON (.json), "
        "not .csv\n"
    )
    assert CALLS == []
    assert not (tmp_path / "x.csv").exists()


def test_parquet_without_pyarrow_is_refused_before_the_call(
    capsys, broker, monkeypatch
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pyarrow" else real(name, *a),
    )
    CALLS.clear()
    status, _, err = call(capsys, broker, "table", "-o", "t.parquet")
    assert (status, CALLS) == (1, [])
    assert err == (
        "error: writing Parquet needs the pyarrow package: "
        "pip install 'dasf_geo[parquet]'\n"
    )


def test_outputs_in_every_format(capsys, broker, tmp_path, dataset):
    for name in ("t.csv", "t.parquet", "t.json"):
        assert (
            call(capsys, broker, "table", "rows=3", "-o", str(tmp_path / name))[0] == 0
        )
    assert pd.read_csv(tmp_path / "t.csv", index_col=0)["y"].tolist() == [0, 0.5, 1]
    assert pd.read_parquet(tmp_path / "t.parquet")["x"].tolist() == [0, 1, 2]
    assert json.loads((tmp_path / "t.json").read_text())["data"][2]["y"] == 1.0
    assert call(capsys, broker, "ones", "n=2", "-o", str(tmp_path / "o.npy"))[0] == 0
    assert np.load(tmp_path / "o.npy").tolist() == [1.0, 1.0]
    dataset.to_netcdf(tmp_path / "in.nc")
    zarr_out = str(tmp_path / "o.zarr")
    assert (
        call(capsys, broker, "scale", f"ds=@{tmp_path / 'in.nc'}", "-o", zarr_out)[0]
        == 0
    )
    assert xr.open_zarr(zarr_out, consolidated=False)["t"].values.tolist() == [
        2.0,
        4.0,
        6.0,
    ]
    # and back in as an argument
    status, out, _ = call(capsys, broker, "first", f"da=@{zarr_out}")
    assert (status, out) == (0, "2.0\n")


# --------------------------------------------------------------------- messages


def test_validation_error_printed_once_without_pydantic_url(capsys, broker):
    status, out, err = call(capsys, broker, "ones", "n=many")
    assert (status, out) == (1, "")
    assert err == (
        "error: the service rejected the arguments of ones():\n"
        "  n: Input should be a valid integer, unable to parse string as an "
        "integer (got 'many')\n"
    )


def test_unserved_topic_fails_fast_with_the_topics_there_are(capsys, broker):
    status = tool.main(
        ["call", "cli-tool", "table", "--broker", broker, "--discovery-timeout", "1"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert err == (
        f"error: no service answered on topic 'cli-tool' at {broker} within 1 s; "
        "check the topic name and the broker address (--broker). Did you mean "
        "'cli-tools'? Topics with a service on this broker: cli-tools\n"
    )


def test_no_broker_message(capsys):
    port = free_port()
    assert tool.main(["call", "t", "f", "--broker", f"ws://127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err == (
        f"error: no broker at ws://127.0.0.1:{port} (connection refused); is one "
        "running? `dasf-geo serve` starts one\n"
    )
    tool.main(["call", "t", "f", "--broker", f"ws://127.0.0.1:{port}", "--debug"])
    lines = capsys.readouterr().err.splitlines()
    assert lines[1].startswith(
        f"  (cannot connect to ws://127.0.0.1:{port}/ws/v2/consumer/non-persistent/"
    )


def test_hints_name_command_line_options(capsys):
    assert tool.main(["call", "t", "f", "--broker", "ws://127.0.0.1:1/ws"]) == 1
    assert capsys.readouterr().err == (
        "error: broker 'ws://127.0.0.1:1/ws' has a path; the Pulsar layout needs "
        "ws://HOST:PORT, a plain-layout broker needs --websocket-url URL\n"
    )


def test_arguments_must_be_name_value(capsys):
    with pytest.raises(SystemExit) as info:
        tool.main(["call", "t", "f", "oops"])
    assert info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "dasf-geo call: error: argument name=value: arguments must look like "
        "name=value or name=@FILE, got 'oops'"
    )


def test_version_and_persistent_flag(capsys):
    with pytest.raises(SystemExit) as info:
        tool.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("dasf-geo ")
    parser = tool.build_parser()
    from dasf_geo.cli._common import normalize_argv

    for argv, value in [
        (["--persistent"], "persistent"),
        (["--persistent", "persistent"], "persistent"),
        (["--persistent", "non-persistent"], None),
        (["--persistent=persistent"], "persistent"),
        ([], None),
    ]:
        args = parser.parse_args(normalize_argv(["call", "t", "f", *argv]))
        assert args.persistent == value, argv
