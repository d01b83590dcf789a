"""Binary replies: the same checks and formats as JSON replies, raw bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr
from pydantic import RootModel

from dasf_geo.data import (
    BINARY_MEDIA_TYPES,
    DataOptions,
    read_reply,
    resolve_annotation,
    write_reply,
)
from dasf_geo.exceptions import CFConventionError, DataError


def dataset() -> xr.Dataset:
    return xr.Dataset(
        {"t": (("lat", "lon"), np.arange(6, dtype="float32").reshape(2, 3))},
        coords={
            "lat": ("lat", [10.0, 20.0], {"units": "degrees_north"}),
            "lon": ("lon", [0.0, 1.0, 2.0], {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


def field_metadata(annotation, options=None):
    model = RootModel[resolve_annotation(annotation, options)]
    return model.model_fields["root"].metadata


@pytest.mark.parametrize("kind", [xr.Dataset, xr.DataArray])
def test_law_read_reply_of_write_reply(kind):
    value = dataset() if kind is xr.Dataset else dataset()["t"]
    out = io.BytesIO()
    media = write_reply(value, field_metadata(kind), out, BINARY_MEDIA_TYPES)
    assert media == f"application/x-netcdf; xarray={kind.__name__}"
    back = read_reply(media, out.getvalue())
    assert isinstance(back, kind)
    xr.testing.assert_identical(back, value)


def test_json_and_binary_forms_carry_the_same_bytes():
    import pybase64

    out = io.BytesIO()
    write_reply(dataset(), field_metadata(xr.Dataset), out, BINARY_MEDIA_TYPES)
    model = RootModel[resolve_annotation(xr.Dataset)]
    wire = model(dataset()).model_dump(mode="json")
    assert pybase64.b64decode(wire) == out.getvalue()


def test_zarr_format_gives_a_zarr_reply():
    out = io.BytesIO()
    meta = field_metadata(xr.Dataset, DataOptions(format="zarr"))
    media = write_reply(dataset(), meta, out, BINARY_MEDIA_TYPES)
    assert media == "application/vnd.zarr+zip; xarray=Dataset"
    xr.testing.assert_identical(read_reply(media, out.getvalue()), dataset())


@pytest.mark.parametrize(
    ("annotation", "value", "accept"),
    [
        (xr.Dataset, dataset(), ["application/json"]),  # not accepted
        (xr.Dataset, dataset(), ["application/x-netcdf; xarray=DataArray"]),
        (int, 3, BINARY_MEDIA_TYPES),  # not a registered xarray type
        (xr.Dataset | None, None, BINARY_MEDIA_TYPES),  # None: JSON null
    ],
)
def test_nothing_is_written_where_binary_does_not_apply(annotation, value, accept):
    out = io.BytesIO()
    assert write_reply(value, field_metadata(annotation), out, accept) is None
    assert out.getvalue() == b""


def test_strict_checks_apply_to_binary_replies_too():
    bad = dataset()
    del bad.attrs["Conventions"]
    meta = field_metadata(xr.Dataset, DataOptions(cf="strict"))
    with pytest.raises(CFConventionError, match="Conventions"):
        write_reply(bad, meta, io.BytesIO(), BINARY_MEDIA_TYPES)


def test_unknown_media_type_and_garbage_are_refused():
    with pytest.raises(DataError, match="unknown binary reply type 'text/plain'"):
        read_reply("text/plain", b"CDF\x01")
    with pytest.raises(DataError, match="not NetCDF3, NetCDF4 or zipped zarr"):
        read_reply("application/x-netcdf; xarray=Dataset", b"garbage")


def test_dask_backed_replies_are_written_chunk_by_chunk_and_opened_lazily(tmp_path):
    from dasf_geo.data import open_reply

    lazy = dataset().chunk({"lat": 1})
    path = tmp_path / "reply.nc"
    media = write_reply(lazy, field_metadata(xr.Dataset), path, BINARY_MEDIA_TYPES)
    assert media == "application/x-netcdf; xarray=Dataset"
    assert path.read_bytes()[:4] == b"CDF\x01"  # still NetCDF3 classic
    opened = open_reply(media, path)
    assert opened["t"].chunks is not None  # not loaded: read when used
    xr.testing.assert_identical(opened.load(), dataset())
    opened.close()
    with pytest.raises(DataError, match="unknown binary reply type"):
        open_reply("text/plain", path)
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"garbage!")
    with pytest.raises(DataError, match="not NetCDF3, NetCDF4 or zipped zarr"):
        open_reply(media, bad)
