"""Property: valid arguments survive validate -> dump -> validate unchanged."""

from __future__ import annotations

import datetime
import math
from typing import Literal, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dasf_geo import BackendModule, configure


class Station(BaseModel):
    """A measuring station."""

    name: str
    lat: float
    lon: float


def measure(
    count: int,
    level: float,
    label: str,
    enabled: bool,
    depths: list[int],
    weights: dict[str, float],
    note: Optional[str] = None,
    unit: Literal["m", "km"] = "m",
    when: Optional[datetime.datetime] = None,
    station: Optional[Station] = None,
) -> dict[str, float]:
    """Collect everything into a dict (the values do not matter here)."""
    return {"count": float(count)}


@configure(methods=["repeat"])
class Greeter:
    def __init__(self, message: str, times: int = 1):
        self.message = message
        self.times = times

    @configure(field_params={"repeat": {"ge": 0, "le": 50}})
    def repeat(self, repeat: int, sep: str = " ") -> str:
        return sep.join([self.message] * repeat * self.times)


MODULE = BackendModule.create_model(
    members=[measure, Greeter], messaging_config={"topic": "roundtrip"}
)

finite = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=20)
aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1),
    max_value=datetime.datetime(2200, 1, 1),
    timezones=st.just(datetime.timezone.utc),
)
stations = st.builds(Station, name=text, lat=finite, lon=finite)

measure_requests = st.fixed_dictionaries(
    {
        "func_name": st.just("measure"),
        "count": st.integers(-(2**53), 2**53),
        "level": finite,
        "label": text,
        "enabled": st.booleans(),
        "depths": st.lists(st.integers(-(2**31), 2**31), max_size=10),
        "weights": st.dictionaries(text, finite, max_size=5),
    },
    optional={
        "note": st.none() | text,
        "unit": st.sampled_from(["m", "km"]),
        "when": st.none() | aware_datetimes,
        "station": st.none() | stations.map(lambda s: s.model_dump()),
    },
)

greeter_requests = st.fixed_dictionaries(
    {
        "class_name": st.just("Greeter"),
        "message": text,
        "function": st.fixed_dictionaries(
            {"func_name": st.just("repeat"), "repeat": st.integers(0, 50)},
            optional={"sep": text},
        ),
    },
    optional={"times": st.integers(-5, 5)},
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=measure_requests | greeter_requests)
def test_validate_dump_validate_is_stable(request):
    first = MODULE.model_validate(request)
    dumped = first.model_dump_json()
    second = MODULE.model_validate_json(dumped)
    assert second == first
    assert second.model_dump_json() == dumped
    # the python dump validates to the same model as well
    assert MODULE.model_validate(first.model_dump()) == first
    # every argument the caller sent is kept with its value
    python = first.model_dump(mode="json")
    for key, value in request.items():
        if isinstance(value, datetime.datetime):
            assert python[key] == value.isoformat().replace("+00:00", "Z")
        elif key != "function":
            assert _same(python[key], value)


@settings(max_examples=30, deadline=None)
@given(request=greeter_requests)
def test_process_request_results_round_trip(request):
    result = MODULE.process_request(request)
    reply = result.model_dump_json()
    again = MODULE.model_validate(request).root.return_model.model_validate_json(reply)
    assert again.root == result.root
