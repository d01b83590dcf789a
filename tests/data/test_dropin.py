"""Drop-in serializers and validators, used as in the DASF / demessaging docs."""

from __future__ import annotations

import base64
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pydantic import ValidationError, create_model, field_validator
from pydantic.functional_serializers import PlainSerializer

from dasf_geo.exceptions import DataError
from dasf_geo.serializers.numpy import encode_ndarray
from dasf_geo.serializers.pandas import encode_dataframe
from dasf_geo.serializers.xarray import encode_xarray
from dasf_geo.validators.numpy import validate_ndarray
from dasf_geo.validators.pandas import validate_dataframe
from dasf_geo.validators.xarray import validate_dataarray, validate_dataset
from tests.conftest import SAMPLE_DATA


@pytest.fixture
def grid():
    return xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc").load()


def test_configure_style_return_model(grid):
    # what demessaging builds for @configure(return_serializer=encode_xarray,
    # return_validators=[validate_dataset]): Any + PlainSerializer + validator
    Model = create_model(
        "Ret",
        root=(
            Annotated[
                Any, PlainSerializer(encode_xarray, return_type=str, when_used="json")
            ],
            ...,
        ),
        __validators__={"v1": field_validator("root")(validate_dataset)},
    )
    text = Model(root=grid).model_dump_json()
    back = Model.model_validate_json(text)
    xr.testing.assert_identical(back.root, grid)


def test_validate_dataset_accepts_reference_inputs(grid):
    text = encode_xarray(grid)
    raw = base64.b64decode(text)
    for value in (grid, text, raw, grid.to_dict()):
        out = validate_dataset(None, value)
        xr.testing.assert_allclose(out, grid)
    xr.testing.assert_identical(validate_dataset(text), grid)
    # what demessaging itself produces and reads
    ref = base64.b64encode(bytes(grid.to_netcdf(format="NETCDF3_CLASSIC"))).decode()
    xr.testing.assert_identical(validate_dataset(None, ref), grid)
    xr.testing.assert_identical(xr.open_dataset(base64.b64decode(text)).load(), grid)


def test_validate_dataarray_accepts_reference_inputs(grid):
    da = grid["tas"]
    text = encode_xarray(da)
    for value in (da, text, base64.b64decode(text), da.to_dict()):
        xr.testing.assert_allclose(validate_dataarray(None, value), da)
    xr.testing.assert_identical(validate_dataarray(None, [1, 2]), xr.DataArray([1, 2]))


@pytest.mark.parametrize(
    ("func", "value", "message"),
    [
        (
            validate_dataset,
            3.5,
            "expected an xarray Dataset as base64 NetCDF text, bytes or a to_dict() "
            "dict, got float",
        ),
        (
            validate_dataset,
            "%%%",
            "the string is not base64-encoded NetCDF (Non-base64 digit found); send "
            "base64 of the bytes of ds.to_netcdf()",
        ),
        (
            validate_dataarray,
            object(),
            "expected an xarray DataArray as base64 NetCDF text, bytes, a to_dict() "
            "dict or nested lists, got object",
        ),
        (
            validate_dataarray,
            {"x": 1},
            "the dict is not a DataArray.to_dict() form (ValueError: cannot convert "
            "dict without the key 'data'')",
        ),
    ],
)
def test_dropin_errors(func, value, message):
    with pytest.raises(DataError) as exc:
        func(None, value)
    assert str(exc.value) == message


def test_field_validator_usage_surfaces_validation_error():
    Model = create_model(
        "Args",
        ds=(Any, ...),
        __validators__={"ds_validator": field_validator("ds")(validate_dataset)},
    )
    with pytest.raises(ValidationError) as exc:
        Model(ds=12)
    (err,) = exc.value.errors(include_url=False)
    assert err["loc"] == ("ds",)
    assert err["msg"].startswith("Value error, expected an xarray Dataset")


def test_pandas_and_numpy_dropins():
    df = pd.DataFrame({"a": [1.0, 2.0]})
    pd.testing.assert_frame_equal(validate_dataframe(None, encode_dataframe(df)), df)
    arr = np.arange(4)
    np.testing.assert_array_equal(validate_ndarray(encode_ndarray(arr)), arr)


def test_encode_xarray_rejects_non_xarray():
    with pytest.raises(
        DataError, match="expected an xarray Dataset or DataArray, got int"
    ):
        encode_xarray(5)
