"""Dataset/DataArray arguments as binary parts: written like replies, read alike."""

from __future__ import annotations

import glob
import json
import os
import tempfile
from typing import Optional

import numpy as np
import pybase64
import pytest
import xarray as xr
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from dasf_geo.data import (
    PARTS_CONTEXT,
    BinaryPart,
    DataOptions,
    PartWriter,
    request_parts,
    resolve_annotation,
)
from dasf_geo.exceptions import PartError
from tests.data.test_replies import dataset

NC_DATASET = "application/x-netcdf; xarray=Dataset"


def request_model(options: DataOptions | None = None) -> type[BaseModel]:
    """A model with Dataset/DataArray fields (annotations built at run time)."""
    dataset_type = resolve_annotation(xr.Dataset, options)
    return create_model(
        "Request",
        __config__=ConfigDict(arbitrary_types_allowed=True),
        ds=(dataset_type, ...),
        da=(Optional[resolve_annotation(xr.DataArray, options)], None),
        many=(list[dataset_type], []),  # type: ignore[valid-type]
        n=(int, 1),
    )


def written(model: BaseModel) -> tuple[str, list[BinaryPart]]:
    """The JSON with placeholders and the parts, as a backend receives them."""
    with PartWriter() as writer:
        text = model.model_dump_json(context={PARTS_CONTEXT: writer})
        parts = []
        for index, part in enumerate(writer.parts, 1):
            part.file.seek(0)
            data = part.file.read()
            assert len(data) == part.size
            parts.append(
                BinaryPart(index, part.media_type, memoryview(data), part.size)
            )
    return text, parts


def test_law_validating_the_parts_gives_what_the_json_form_gives():
    Request = request_model()
    ds = dataset()
    model = Request(ds=ds, da=ds["t"], many=[ds, ds * 2], n=3)
    text, parts = written(model)
    assert json.loads(text) == {
        "ds": {"$dasfGeoPart": 1},
        "da": {"$dasfGeoPart": 2},
        "many": [{"$dasfGeoPart": 3}, {"$dasfGeoPart": 4}],
        "n": 3,
    }
    assert [p.media_type for p in parts] == [
        NC_DATASET,
        "application/x-netcdf; xarray=DataArray",
        NC_DATASET,
        NC_DATASET,
    ]
    with request_parts(parts):
        back = Request.model_validate_json(text)
    plain = Request.model_validate_json(model.model_dump_json())
    for got, want in ((back.ds, plain.ds), (back.da, plain.da)):
        xr.testing.assert_identical(got, want)
    for got, want in zip(back.many, plain.many, strict=True):
        xr.testing.assert_identical(got, want)


def test_a_part_holds_the_bytes_of_the_json_form():
    Request = request_model()
    model = Request(ds=dataset())
    _, (part,) = written(model)
    base64_form = json.loads(model.model_dump_json())["ds"]
    assert bytes(part.source) == pybase64.b64decode(base64_form)


def test_parts_are_checked_like_the_json_form():
    Request = request_model(DataOptions(cf="strict"))
    bad = dataset()
    bad["t"].attrs["units"] = "not a unit"
    model = Request.model_construct(ds=bad)  # as a backend's own value may be
    with pytest.raises(Exception, match="units-parseable") as plain:
        model.model_dump_json()
    with PartWriter() as writer:
        with pytest.raises(type(plain.value), match="units-parseable"):
            model.model_dump_json(context={PARTS_CONTEXT: writer})
        assert not writer.parts


def test_a_part_file_decodes_and_the_writer_leaves_no_file_behind():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "dasf-geo-arg-*")))
    Request = request_model()
    with PartWriter() as writer:
        text = Request(ds=dataset()).model_dump_json(context={PARTS_CONTEXT: writer})
        (outgoing,) = writer.parts
        with tempfile.NamedTemporaryFile(suffix=".nc") as fh:
            outgoing.file.seek(0)
            fh.write(outgoing.file.read())
            fh.flush()
            part = BinaryPart(1, outgoing.media_type, fh.name, outgoing.size)
            with request_parts([part]):
                back = Request.model_validate_json(text)
    xr.testing.assert_identical(back.ds, dataset())
    assert outgoing.file.closed
    after = set(glob.glob(os.path.join(tempfile.gettempdir(), "dasf-geo-arg-*")))
    assert after <= before


def errors_of(Request, text, parts):
    with pytest.raises(ValidationError) as info, request_parts(parts):
        Request.model_validate_json(text)
    return info.value.errors(include_url=False)


def test_a_placeholder_for_a_missing_part_names_the_argument():
    Request = request_model()
    text, parts = written(Request(ds=dataset()))
    (error,) = errors_of(Request, text.replace('Part":1', 'Part":2'), parts)
    assert error["loc"] == ("ds",)
    assert (
        "refers to binary part 2, but the request has only 1 binary part"
        in (error["msg"])
    )


def test_a_part_that_is_not_netcdf_names_the_argument_and_the_part():
    Request = request_model()
    text, _ = written(Request(ds=dataset()))
    junk = BinaryPart(1, NC_DATASET, memoryview(b"GIF89a..."), 9)
    (error,) = errors_of(Request, text, [junk])
    assert error["loc"] == ("ds",)
    assert error["msg"] == (
        "ds: part 1 (application/x-netcdf; xarray=Dataset, 9 bytes) is not "
        "application/x-netcdf data (it starts with b'GIF8')"
    )


def test_a_truncated_part_is_named():
    Request = request_model()
    text, (part,) = written(Request(ds=dataset()))
    cut = BinaryPart(1, NC_DATASET, part.source[:100], 100)  # type: ignore[index]
    (error,) = errors_of(Request, text, [cut])
    assert error["msg"].startswith("ds: part 1 (application/x-netcdf; xarray=Dataset")
    assert "truncated or corrupt" in error["msg"]


def test_a_zarr_part_declared_as_netcdf_is_named():
    Request = request_model()
    text, _ = written(Request(ds=dataset()))
    zipped = BinaryPart(1, NC_DATASET, memoryview(b"PK\x03\x04rest"), 8)
    (error,) = errors_of(Request, text, [zipped])
    assert "holds zarr data, not application/x-netcdf" in error["msg"]


def test_a_placeholder_without_parts_or_for_another_type_is_refused():
    Request = request_model()
    with pytest.raises(ValidationError, match="the request has no binary parts"):
        Request.model_validate_json('{"ds": {"$dasfGeoPart": 1}}')

    Frame = create_model("Frame", table=(resolve_annotation(np.ndarray), ...))

    part = BinaryPart(1, NC_DATASET, memoryview(b"CDF\x01"), 4)
    with (
        pytest.raises(ValidationError, match=r"not for a numpy\.ndarray"),
        request_parts([part]),
    ):
        Frame.model_validate_json('{"table": {"$dasfGeoPart": 1}}')


def test_a_part_no_placeholder_refers_to_is_an_error():
    Request = request_model()
    text, parts = written(Request(ds=dataset()))
    extra = BinaryPart(2, NC_DATASET, parts[0].source, parts[0].size)
    with (
        pytest.raises(PartError, match=r"part 2 \(.*\) is not referred to"),
        request_parts([*parts, extra]),
    ):
        Request.model_validate_json(text)


def test_a_part_referred_to_twice_is_decoded_once():
    Request = request_model()
    text, (part,) = written(Request(ds=dataset()))
    twice = text.replace('"many":[]', '"many":[{"$dasfGeoPart":1}]')
    with request_parts([part]):
        back = Request.model_validate_json(twice)
    assert back.many[0] is back.ds


def test_without_a_writer_the_json_form_is_unchanged():
    Request = request_model()
    model = Request(ds=dataset())
    assert model.model_dump_json() == model.model_dump_json(context={"other": 1})
    assert json.loads(model.model_dump_json())["ds"].startswith("Q0RGA")
