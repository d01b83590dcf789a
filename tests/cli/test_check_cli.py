"""``dasf-geo check``: findings per line or as JSON, exit 0/1/2, ``--fix``,
and bad input named, never a hang or a traceback."""

from __future__ import annotations

import json
import shutil
import socket
import threading

import numpy as np
import pytest
import xarray as xr

from dasf_geo.cli.tool import main
from dasf_geo.data import check_demap
from tests.conftest import SAMPLE_DATA


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_data(capsys):
    clean = str(SAMPLE_DATA / "gridded_temperature.nc")
    broken = str(SAMPLE_DATA / "noncompliant.nc")
    assert run(capsys, clean, "--demap", "--crs", "required") == (0, "", "")
    code, out, err = run(capsys, clean, broken)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert len(lines) == 7
    assert all(line.startswith(f"{broken}: ") for line in lines)
    assert lines[2] == (
        f"{broken}: error: variable 'temp' attribute 'standard_name': "
        "'air_temprature' is not in the CF standard name table; fix the spelling "
        "or use long_name instead; did you mean 'air_temperature'? "
        "[rule standard-name-table]"
    )
    assert lines[-1].startswith(f"{broken}: warning: global attribute 'crs'")
    # warnings only: exit 0
    assert run(capsys, broken, "--cf", "warn")[0] == 0
    assert run(capsys, broken, "--cf", "off", "--crs", "off") == (0, "", "")
    assert run(capsys, broken, "--cf", "off", "--crs", "required")[0] == 1


def test_json_output(capsys):
    broken = str(SAMPLE_DATA / "noncompliant.nc")
    code, out, _ = run(capsys, broken, "--format", "json", "--crs", "off")
    assert code == 1
    (result,) = json.loads(out)
    assert result["path"] == broken and result["error"] is None
    table = result["findings"][2]
    assert table == {
        "severity": "error",
        "group": "/",
        "variable": "temp",
        "attribute": "standard_name",
        "rule": "standard-name-table",
        "message": "'air_temprature' is not in the CF standard name table; fix "
        "the spelling or use long_name instead",
        "suggestion": "did you mean 'air_temperature'?",
    }


def test_fix_writes_a_demap_ready_copy(capsys, tmp_path):
    ds = xr.Dataset(
        {"n": (("lon", "lat"), np.ones((3, 2), "int64"))},
        coords={
            "lat": (
                "lat",
                [50.0, 51.0],
                {"standard_name": "latitude", "units": "degrees_north"},
            ),
            "lon": (
                "lon",
                [7.0, 8.0, 9.0],
                {"standard_name": "longitude", "units": "degrees_east"},
            ),
        },
        attrs={"Conventions": "CF-1.8"},
    )
    src, out = tmp_path / "in.nc", tmp_path / "out.nc"
    ds.to_netcdf(src, format="NETCDF4")
    code, stdout, err = run(capsys, str(src), "--demap", "--fix", str(out))
    assert code == 1  # the input has Demap findings
    assert "[rule demap-crs]" in stdout
    assert err.splitlines() == [
        "fixed: crs: None -> 'EPSG:4326'",
        "fixed: variable 'n': dtype int64 -> int32",
        "fixed: variable 'n': dims ('lon', 'lat') -> ('lat', 'lon')",
        f"wrote {out}",
    ]
    assert out.read_bytes()[:4] == b"CDF\x01"
    with xr.open_dataset(out) as fixed:
        assert check_demap(fixed) == []
    assert run(capsys, str(out), "--demap")[0] == 0
    # what cannot be fixed is said, and nothing is written
    station = tmp_path / "station.nc"
    xr.Dataset({"v": ("station", [1.0])}).to_netcdf(station)
    code, _, err = run(capsys, str(station), "--fix", str(tmp_path / "no.nc"))
    assert code == 1
    assert err.startswith("error: --fix: cannot make the data Demap-ready")
    assert not (tmp_path / "no.nc").exists()
    code, _, err = run(capsys, str(station), str(src), "--fix", str(out))
    assert (code, err) == (2, "error: --fix takes exactly one PATH\n")


def test_groups_are_checked_one_by_one(capsys, tmp_path):
    path = tmp_path / "groups.nc"
    root = xr.Dataset(
        coords={
            "lat": (
                "lat",
                [1.0, 2.0],
                {"standard_name": "latitude", "units": "degrees_north"},
            )
        },
        attrs={"Conventions": "CF-1.8"},
    )
    root.to_netcdf(path, mode="w")
    good = xr.Dataset({"t": ("lat", [1.0, 2.0], {"units": "K", "coordinates": "lat"})})
    good.to_netcdf(path, mode="a", group="good")
    bad = xr.Dataset({"t": ("lat", [1.0, 2.0], {"units": "Kelvinn"})})
    bad.to_netcdf(path, mode="a", group="bad")
    code, out, err = run(capsys, str(path), "--crs", "off")
    assert code == 1 and err == ""
    assert out.splitlines() == [
        f"{path} group /bad: error: variable 't' attribute 'units': 'Kelvinn' is "
        'not a valid UDUNITS unit ([UT_UNKNOWN] Failed to parse unit "Kelvinn") '
        "[rule units-parseable]"
    ]


def test_a_thousand_groups(capsys, tmp_path):
    import netCDF4

    path = tmp_path / "many.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.Conventions = "CF-1.8"
        for i in range(1000):
            g = nc.createGroup(f"g{i}")
            g.createDimension("x", 2)
            v = g.createVariable("v", "f4", ("x",))
            v.units = "Kelvinn" if i == 999 else "K"
    code, out, _ = run(capsys, str(path), "--crs", "off")
    assert code == 1
    assert out.count("\n") == 1 and "group /g999:" in out


def _not_answering_port() -> tuple[socket.socket, int]:
    """A listening socket that never accepts: connections hang."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    return sock, sock.getsockname()[1]


def test_bad_input_is_named_and_never_hangs(capsys, tmp_path):
    clean = SAMPLE_DATA / "gridded_temperature.nc"
    text = tmp_path / "notes.txt"
    text.write_text("hello, not NetCDF\n")
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(clean.read_bytes()[:300])
    nc4 = tmp_path / "full4.nc"
    xr.open_dataset(clean).to_netcdf(nc4, format="NETCDF4")
    truncated4 = tmp_path / "truncated4.nc"
    truncated4.write_bytes(nc4.read_bytes()[:2000])
    empty_dir = tmp_path / "not-a-store"
    empty_dir.mkdir()
    h5 = tmp_path / "plain.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    cases = {
        str(text): "the data is not NetCDF3, NetCDF4 or zipped zarr",
        str(truncated): "a truncated or corrupt NetCDF3 file (ValueError: ",
        str(
            truncated4
        ): "an HDF5 file that is not NetCDF4, or a truncated NetCDF4 file",
        str(h5): "an HDF5 file that is not NetCDF4, or a truncated NetCDF4 file",
        str(empty_dir): "a directory that is not a zarr store",
        str(tmp_path / "missing.nc"): "no such file or directory",
        "http://127.0.0.1:9/data.nc": "the server does not answer",
    }
    for path, message in cases.items():
        code, out, err = run(capsys, path)
        assert (code, out) == (2, ""), path
        assert err.startswith(f"{path}: cannot read: "), err
        assert message in err, (path, err)
    # the serializers name the same problems
    from dasf_geo.data import open_netcdf_lazily, read_netcdf
    from dasf_geo.exceptions import DataError

    with pytest.raises(
        DataError, match="the file is a truncated or corrupt NetCDF3 file"
    ):
        read_netcdf(truncated)
    with pytest.raises(DataError, match="the reply is a truncated or corrupt NetCDF3"):
        open_netcdf_lazily(truncated, "the reply")
    with pytest.raises(DataError, match="not NetCDF3, NetCDF4 or zipped zarr"):
        read_netcdf(text)
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_netcdf(truncated4)
    # one unreadable path among good ones: the others are still checked
    code, out, err = run(capsys, str(text), str(SAMPLE_DATA / "noncompliant.nc"))
    assert code == 2 and out.count("\n") == 7 and err.count("\n") == 1


def test_a_url_that_never_answers_times_out(capsys):
    sock, port = _not_answering_port()
    try:
        code, out, err = run(capsys, f"http://127.0.0.1:{port}/x.nc", "--timeout", "1")
    finally:
        sock.close()
    assert code == 2 and out == ""
    assert err.startswith(
        f"http://127.0.0.1:{port}/x.nc: cannot read: the server does not answer"
    )


def test_zarr_stores_and_a_missing_chunk(capsys, tmp_path):
    pytest.importorskip("zarr")
    store = tmp_path / "grid.zarr"
    ds = xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc").load()
    ds.chunk({"lat": 6}).to_zarr(store, consolidated=False)
    assert run(capsys, str(store))[0] == 0
    # remove one chunk of the data variable
    chunks = sorted(
        p
        for p in (store / "tas").rglob("*")
        if p.is_file() and not p.name.startswith((".", "zarr"))
    )
    assert chunks
    chunks[0].unlink()
    code, out, err = run(capsys, str(store))
    # a missing chunk reads as the fill value (zarr's rule): named, as a
    # warning (a store written sparse lacks chunks on purpose)
    assert (code, err) == (0, "")
    assert out == (
        f"{store}: warning: variable 'tas': 1 of 3 chunks are not in the store; "
        "they read as the fill value nan; copy the store again if it was not "
        "written sparse on purpose [rule zarr-missing-chunks]\n"
    )
    shutil.rmtree(store)


def test_check_runs_in_threads_without_leaking(capsys):
    # the opener thread is a daemon: many checks leave no thread behind
    before = threading.active_count()
    for _ in range(5):
        run(capsys, str(SAMPLE_DATA / "gridded_temperature.nc"))
    assert threading.active_count() <= before + 1
