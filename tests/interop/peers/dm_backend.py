# ruff: noqa: UP006, UP035  (kept in the seed's style: typing.List)
"""Reference backend module for the interop tests, written for demessaging 0.6.4.

It is the seed's hello world (function and ``HelloWorld`` class with
``repeat_message`` and ``greet``) plus a function returning a big string (to
force a fragmented reply) and functions that return and take an
``xr.Dataset`` with demessaging's own ``encode_xarray`` / ``validate_dataset``.
``geo_backend.py`` is the same API written for dasf_geo, so one generated
demessaging client calls either.

Run it with the reference venv's interpreter, e.g.
``python dm_backend.py -t TOPIC -H 127.0.0.1 -p PORT listen``.
"""

import datetime
from typing import List

import numpy
import xarray  # the generated client needs the full module name
import xarray as xr
from demessaging import configure, main, registry
from demessaging.serializers.xarray import encode_xarray
from demessaging.validators.xarray import validate_dataset
from pydantic import BaseModel

__all__ = [
    "HelloWorld",
    "big_string",
    "echo",
    "hello_world",
    "make_dataset",
    "make_dataset_auto",
    "scale_dataset",
]


def hello_world() -> str:
    """Say hello."""
    return "HelloWorld"


@registry.register_type
class GreetResponse(BaseModel):
    message: str
    greetings: List[str]
    greeting_time: datetime.datetime


@configure(methods=["repeat_message", "greet"])
class HelloWorld:
    """The seed's HelloWorld class."""

    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> List[str]:
        """Repeat the message."""
        return [self.message] * repeat

    @configure(field_params={"repeat": {"ge": 0}})
    def greet(self, repeat: int, greet_message: str) -> GreetResponse:
        """Greet a few times."""
        greetings: List[str] = [greet_message] * repeat
        return GreetResponse(
            message=self.message,
            greetings=greetings,
            greeting_time=datetime.datetime.now(),
        )

    def unexposed_method(self) -> str:
        return self.message


def big_string(n: int) -> str:
    """Return ``n`` characters: the digits 0-9 repeated."""
    return ("0123456789" * (n // 10 + 1))[:n]


def echo(text: str) -> str:
    """Return ``text`` unchanged (payload round trips)."""
    return text


def _grid(nx: int, ny: int, nt: int) -> xarray.Dataset:
    data = numpy.arange(nt * ny * nx, dtype="float32").reshape(nt, ny, nx)
    return xr.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "time": (
                "time",
                numpy.arange(nt, dtype="float64"),
                {"units": "days since 2000-01-01"},
            ),
            "lat": ("lat", numpy.linspace(-80, 80, ny), {"units": "degrees_north"}),
            "lon": ("lon", numpy.linspace(-170, 170, nx), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


@configure(return_serializer=encode_xarray, return_validators=[validate_dataset])
def make_dataset(nx: int, ny: int, nt: int) -> xarray.Dataset:
    """A CF-style gridded time series with a ``crs`` (values 0, 1, 2, …)."""
    return _grid(nx, ny, nt)


@configure(return_serializer=encode_xarray, return_validators=[validate_dataset])
def make_dataset_auto(nx: int, ny: int, nt: int) -> xarray.Dataset:
    """Same as ``make_dataset`` (the reference needs the serializer configured)."""
    return _grid(nx, ny, nt)


@configure(
    validators={"ds": [validate_dataset]},
    serializers={"ds": encode_xarray},
    return_serializer=encode_xarray,
    return_validators=[validate_dataset],
)
def scale_dataset(ds: xarray.Dataset, factor: float) -> xarray.Dataset:
    """Multiply every data variable by ``factor``; keep attributes."""
    out = ds * factor
    out.attrs = dict(ds.attrs)
    out.attrs["scaled_by"] = factor
    return out


if __name__ == "__main__":
    main(messaging_config=dict(topic="interop-reference"))
