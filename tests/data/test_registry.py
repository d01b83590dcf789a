"""The type registry through pydantic: annotations, options, schema, decoding."""

from __future__ import annotations

import json
import warnings
from typing import Annotated, Optional, Union

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from dasf_geo.data import (
    SCHEMA_TYPE_KEY,
    CFConventionWarning,
    DataOptions,
    RegistryType,
    decode_by_schema,
    get_entry,
    register,
    registered_types,
    resolve_annotation,
    unregister,
)
from dasf_geo.exceptions import ConfigurationError, UnsupportedTypeError
from tests.conftest import SAMPLE_DATA


@pytest.fixture
def grid():
    return xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc").load()


def model(**fields):
    opts = fields.pop("_options", None)
    return create_model(
        "M", **{k: (resolve_annotation(v, opts), ...) for k, v in fields.items()}
    )


def test_registered_builtins():
    assert set(registered_types()) >= {
        "xarray.Dataset",
        "xarray.DataArray",
        "pandas.DataFrame",
        "numpy.ndarray",
    }


def test_failed_lookup_lists_registered():
    class Nope:
        pass

    with pytest.raises(UnsupportedTypeError) as exc:
        get_entry(Nope)
    msg = str(exc.value)
    assert msg.startswith(
        "no registry entry for test_failed_lookup_lists_registered.<locals>.Nope; "
        "registered: "
    )
    assert (
        "numpy.ndarray, pandas.DataFrame, pandas.Series, xarray.DataArray, "
        "xarray.DataTree, xarray.Dataset" in msg
    )
    assert msg.endswith(
        "Register it with dasf_geo.data.register(type, validate=..., "
        "serialize=..., json_schema=...)"
    )
    with pytest.raises(
        UnsupportedTypeError, match=r"^no registry entry for x\.Y; registered: "
    ):
        get_entry("x.Y")


def test_unregistered_types_come_back_unchanged():
    for ann in (int, str, list[int], Optional[dict[str, float]], Annotated[int, 3]):
        assert resolve_annotation(ann) is ann


DESCRIBED = Annotated[xr.Dataset, Field(description="d")]
NESTED = [
    (xr.Dataset, lambda g: g),
    (Optional[xr.Dataset], lambda g: g),
    (xr.Dataset | None, lambda g: None),
    (list[xr.Dataset], lambda g: [g, g]),
    (dict[str, xr.Dataset], lambda g: {"a": g}),
    (tuple[xr.Dataset, int], lambda g: (g, 3)),
    (tuple[xr.Dataset, ...], lambda g: (g,)),
    (DESCRIBED, lambda g: g),
    (Union[int, xr.Dataset], lambda g: g),
]


@pytest.mark.parametrize(("ann", "make"), NESTED, ids=[str(a) for a, _ in NESTED])
def test_nested_annotations_round_trip(ann, make, grid):
    value = make(grid)
    M = model(v=ann)
    m = M(v=value)
    text = m.model_dump_json()
    back = M.model_validate_json(text)
    assert _equal(back.v, value)
    # python mode keeps objects
    assert _equal(m.model_dump()["v"], value)
    # a caller with only the schema decodes it
    decoded = decode_by_schema(M.model_json_schema(), json.loads(text))["v"]
    if isinstance(value, tuple):
        decoded = tuple(decoded)
    assert _equal(decoded, value)


def _equal(a, b):
    if isinstance(b, xr.Dataset):
        return isinstance(a, xr.Dataset) and a.identical(b)
    if isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in b)
    return a == b


def test_all_builtin_types_round_trip(grid):
    df = pd.DataFrame(
        {
            "t": pd.date_range("2020", periods=2, tz="UTC"),
            "v": pd.array([1, None], "Int64"),
        }
    )
    arr = np.arange(6, dtype="f4").reshape(2, 3)
    da = grid["tas"]
    M = model(ds=xr.Dataset, da=xr.DataArray, df=pd.DataFrame, arr=np.ndarray)
    text = M(ds=grid, da=da, df=df, arr=arr).model_dump_json()
    for back in (
        M.model_validate_json(text),
        M(**decode_by_schema(M.model_json_schema(), json.loads(text))),
    ):
        xr.testing.assert_identical(back.ds, grid)
        xr.testing.assert_identical(back.da, da)
        pd.testing.assert_frame_equal(back.df, df, check_exact=True)
        np.testing.assert_array_equal(back.arr, arr)
        assert back.arr.dtype == arr.dtype


def test_schema_carries_media_type(grid):
    schema = model(ds=xr.Dataset, arr=np.ndarray).model_json_schema()
    ds = schema["properties"]["ds"]
    assert ds["type"] == "string"
    assert ds["contentEncoding"] == "base64"
    assert ds["contentMediaType"] == "application/x-netcdf"
    assert ds[SCHEMA_TYPE_KEY] == "xarray.Dataset"
    zarr = model(ds=xr.Dataset, _options=DataOptions(format="zarr")).model_json_schema()
    assert zarr["properties"]["ds"]["contentMediaType"] == "application/vnd.zarr+zip"
    arr = schema["properties"]["arr"]
    assert arr[SCHEMA_TYPE_KEY] == "numpy.ndarray"
    assert arr["anyOf"][0]["properties"]["data"]["contentEncoding"] == "base64"


def test_validation_error_names_argument_and_problem():
    M = model(ds=xr.Dataset, arr=np.ndarray)
    with pytest.raises(ValidationError) as exc:
        M(ds="@@@", arr=[[1], [1, 2]])
    errors = exc.value.errors(include_url=False)
    assert [e["loc"] for e in errors] == [("ds",), ("arr",)]
    assert errors[0]["type"] == "dasf_data"
    assert errors[0]["msg"] == (
        "ds: the string is not base64-encoded NetCDF (Non-base64 digit found); "
        "send base64 of the bytes of ds.to_netcdf()"
    )
    assert errors[1]["msg"].startswith("arr: nested lists must be rectangular")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            5,
            "ds: expected an xarray Dataset as base64 NetCDF text, bytes or a "
            "to_dict() dict, got int",
        ),
        (
            b"not netcdf",
            "the data is not NetCDF3, NetCDF4 or zipped zarr (starts "
            "with b'not '); send base64 of the bytes written by to_netcdf()",
        ),
        (
            "",
            "the data is not NetCDF3, NetCDF4 or zipped zarr (starts with b''); "
            "send base64 of the bytes written by to_netcdf()",
        ),
        ({"data_vars": 5}, "ds: the dict is not a Dataset.to_dict() form "),
    ],
)
def test_dataset_hostile_inputs(value, message):
    M = model(ds=xr.Dataset)
    with pytest.raises(ValidationError) as exc:
        M(ds=value)
    (err,) = exc.value.errors(include_url=False)
    assert err["msg"].startswith(message)


def test_cf_strict_rejects_input_naming_variable_and_rule(grid):
    bad = grid.copy()
    bad["tas"].attrs["units"] = "Kelvinn"
    M = model(ds=xr.Dataset, _options=DataOptions(cf="strict"))
    with pytest.raises(ValidationError) as exc:
        M(ds=bad)
    (err,) = exc.value.errors(include_url=False)
    assert err["msg"] == (
        "ds: 1 CF finding(s): variable 'tas' attribute 'units': 'Kelvinn' is not "
        'a valid UDUNITS unit ([UT_UNKNOWN] Failed to parse unit "Kelvinn") '
        "[rule units-parseable]"
    )


def test_cf_warn_warns_and_off_is_silent(grid):
    bad = grid.copy()
    bad["tas"].attrs["standard_name"] = "air_temp"
    with pytest.warns(CFConventionWarning, match="rule standard-name-table") as rec:
        model(ds=xr.Dataset)(ds=bad)
    assert rec[0].message.findings[0].variable == "tas"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(ds=xr.Dataset, _options=DataOptions(cf="off"))(ds=bad)


def test_crs_required_rejects_missing_crs(grid):
    bad = grid.copy()
    del bad.attrs["crs"]
    M = model(ds=xr.Dataset, _options=DataOptions(crs="required"))
    with pytest.raises(ValidationError) as exc:
        M(ds=bad)
    assert exc.value.errors(include_url=False)[0]["msg"] == (
        "ds: 1 crs finding(s): global attribute 'crs': missing; set "
        "ds.attrs['crs'] = 'EPSG:4326' (or the EPSG code of your data) "
        "[rule crs-missing]"
    )


def test_strict_cf_on_output_is_a_serialization_error(grid):
    from pydantic_core import PydanticSerializationError

    bad = grid.copy()
    del bad.attrs["Conventions"]
    M = model(ds=xr.Dataset, _options=DataOptions(cf="off"))
    m = M(ds=bad)
    M2 = model(ds=xr.Dataset, _options=DataOptions(cf="strict"))
    with pytest.raises(PydanticSerializationError, match="rule conventions-attribute"):
        M2.model_construct(ds=m.ds).model_dump_json()


def test_original_errors_gives_the_data_error_itself(grid):
    from pydantic_core import PydanticSerializationError

    from dasf_geo.data import original_errors
    from dasf_geo.exceptions import CFConventionError

    bad = grid.copy()
    del bad.attrs["Conventions"]
    M = model(ds=xr.Dataset, _options=DataOptions(cf="strict"))
    broken = M.model_construct(ds=bad)
    rule = "rule conventions-attribute"
    with pytest.raises(CFConventionError, match=rule) as info, original_errors():
        broken.model_dump_json()
    assert info.value.findings  # the finding objects, not only their text
    assert "Error calling function" not in str(info.value)
    # other serialization errors pass unchanged; outside the block as before
    with pytest.raises(PydanticSerializationError), original_errors():
        TypeAdapter(object).dump_json(object())
    with pytest.raises(PydanticSerializationError):
        broken.model_dump_json()


def test_demap_check_and_coerce_on_output(grid):
    odd = grid.assign(count=(("lat", "lon"), np.ones((18, 36), "i8")))
    M = model(ds=xr.Dataset, _options=DataOptions(demap="check"))
    from pydantic_core import PydanticSerializationError

    with pytest.raises(PydanticSerializationError, match="rule demap-dtype"):
        M(ds=odd).model_dump_json()
    M = model(ds=xr.Dataset, _options=DataOptions(demap="coerce"))
    back = M.model_validate_json(M(ds=odd).model_dump_json())
    assert back.ds["count"].dtype == np.int32


def test_options_merge_and_resolve():
    mod = DataOptions(cf="strict", format="netcdf4")
    fn = DataOptions(cf="off", crs="required")
    merged = mod.merge(fn)
    assert (merged.cf, merged.crs, merged.format, merged.demap) == (
        "off",
        "required",
        "netcdf4",
        None,
    )
    assert merged.resolved().demap == "off"
    assert DataOptions().resolved() == DataOptions(
        cf="warn", crs="optional", demap="off", format="auto"
    )
    assert mod.merge(None) is mod
    with pytest.raises(ValidationError):
        DataOptions(cf="loud")
    with pytest.raises(ValidationError):
        DataOptions(compression=11)
    with pytest.raises(ValidationError):
        DataOptions(unknown=1)


def test_resolve_annotation_rejects_bad_options():
    with pytest.raises(
        ConfigurationError, match="options must be a DataOptions, got dict"
    ):
        resolve_annotation(xr.Dataset, {"cf": "strict"})


def test_user_model_with_arbitrary_types(grid):
    class Request(BaseModel):
        """A user's model."""

        model_config = ConfigDict(arbitrary_types_allowed=True)
        ds: xr.Dataset
        frames: list[pd.DataFrame] = []
        n: int = 3

    R = resolve_annotation(Request)
    assert issubclass(R, Request) and R is not Request
    assert resolve_annotation(Request) is R  # cached
    text = R(ds=grid).model_dump_json()
    back = R.model_validate_json(text)
    assert isinstance(back, Request)
    xr.testing.assert_identical(back.ds, grid)
    assert back.n == 3
    decoded = decode_by_schema(R.model_json_schema(), json.loads(text))
    xr.testing.assert_identical(decoded["ds"], grid)


def test_registry_annotation_in_user_model(grid):
    from dasf_geo.data import get_entry

    Dataset = Annotated[xr.Dataset, RegistryType(get_entry(xr.Dataset))]

    class Request(BaseModel):
        ds: Dataset

    back = Request.model_validate_json(Request(ds=grid).model_dump_json())
    xr.testing.assert_identical(back.ds, grid)


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def _point(v):
    if isinstance(v, Point):
        return v
    if isinstance(v, str) and v.count(",") == 1:
        x, y = v.split(",")
        return Point(float(x), float(y))
    raise ValueError(f"expected 'x,y', got {v!r}")


@pytest.fixture
def point_registered():
    register(
        Point,
        validate=_point,
        serialize=lambda p: f"{p.x},{p.y}",
        json_schema={"type": "string", "pattern": r"^[^,]+,[^,]+$"},
        name="tests.Point",
    )
    yield
    unregister(Point)


def test_user_registered_type(point_registered):
    M = model(p=list[Point])
    text = M(p=[Point(1, 2)]).model_dump_json()
    assert json.loads(text) == {"p": ["1,2"]}
    assert M.model_validate_json(text).p == [Point(1, 2)]
    schema = M.model_json_schema()
    assert schema["properties"]["p"]["items"][SCHEMA_TYPE_KEY] == "tests.Point"
    assert decode_by_schema(schema, {"p": ["3,4"]}) == {"p": [Point(3, 4)]}
    with pytest.raises(ValidationError) as exc:
        M(p=["nope"])
    assert exc.value.errors(include_url=False)[0]["msg"] == (
        "cannot read the value as tests.Point: ValueError: expected 'x,y', got 'nope'"
    )
    with pytest.raises(ConfigurationError, match="already registered"):
        register(Point, validate=_point, serialize=str, json_schema={})


def test_register_misuse():
    with pytest.raises(ConfigurationError, match="register\\(\\) needs a class"):
        register("x", validate=str, serialize=str, json_schema={})
    with pytest.raises(ConfigurationError, match="validate must be callable, got int"):
        register(Point, validate=1, serialize=str, json_schema={})
    with pytest.raises(ConfigurationError, match="json_schema must be a dict"):
        register(Point, validate=str, serialize=str, json_schema=3)
    with pytest.raises(UnsupportedTypeError):
        unregister(Point)


def test_decode_by_schema_leaves_unknown_alone():
    assert decode_by_schema({"type": "integer"}, 5) == 5
    assert decode_by_schema({}, {"a": [1]}) == {"a": [1]}
    assert decode_by_schema("junk", 3) == 3  # type: ignore[arg-type]
    loop = {"$defs": {"A": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}
    assert decode_by_schema(loop, 1) == 1
    assert decode_by_schema({SCHEMA_TYPE_KEY: "unknown.Type"}, "x") == "x"


def test_dataarray_demap_coercion_keeps_name_and_crs(grid):
    da = grid["tas"].transpose("time", "lon", "lat").rename(None)
    da.attrs["crs"] = "EPSG:4326"
    M = model(da=xr.DataArray, _options=DataOptions(demap="coerce"))
    back = M.model_validate_json(M(da=da).model_dump_json()).da
    assert back.name is None
    assert back.dims == ("time", "lat", "lon")
    assert back.attrs["crs"] == "EPSG:4326"


def test_format_and_compression_options_reach_the_wire(grid):
    import base64

    for opts, magic in (
        (DataOptions(), b"CDF\x01"),
        (DataOptions(format="netcdf4"), b"\x89HDF"),
        (DataOptions(compression=4), b"\x89HDF"),
        (DataOptions(format="zarr"), b"PK\x03\x04"),
    ):
        M = model(ds=xr.Dataset, _options=opts)
        text = json.loads(M(ds=grid).model_dump_json())["ds"]
        assert base64.b64decode(text)[:4] == magic, opts
        xr.testing.assert_identical(
            M.model_validate_json(M(ds=grid).model_dump_json()).ds, grid
        )


@pytest.mark.parametrize(
    "value",
    [
        {"data_vars": []},
        {"coords": 5},
        {"data_vars": {"a": {"dims": "x", "data": {"q": 1}}}},
        {"dims": 3, "data": [1]},
    ],
)
def test_hostile_dicts_are_validation_errors(value):
    M = model(ds=xr.Dataset, da=xr.DataArray)
    with pytest.raises(ValidationError) as exc:
        M(ds=value, da=value)
    for err in exc.value.errors(include_url=False):
        assert err["type"] == "dasf_data"
        assert err["msg"].startswith(f"{err['loc'][0]}: the dict is not a Data")


def test_numpy_typing_generics_use_the_ndarray_entry():
    from typing import Any

    import numpy.typing as npt

    M = model(a=npt.NDArray[np.float64], b=np.ndarray[Any, np.dtype[np.int8]])
    text = M(a=np.arange(3.0), b=[1, 2]).model_dump_json()
    back = M.model_validate_json(text)
    np.testing.assert_array_equal(back.a, np.arange(3.0))
    assert back.a.dtype == np.float64
    schema = M.model_json_schema()["properties"]
    assert (
        schema["a"][SCHEMA_TYPE_KEY] == schema["b"][SCHEMA_TYPE_KEY] == "numpy.ndarray"
    )


def test_compression_option_is_a_level_not_a_switch():
    with pytest.raises(ValidationError) as exc:
        DataOptions(compression=True)
    assert exc.value.errors(include_url=False)[0]["msg"] == (
        "Value error, compression must be a zlib level 1-9 (or None), not a bool; "
        "use e.g. compression=4"
    )
    assert DataOptions(compression="5").compression == 5
