"""Multipart requests: the dasfGeoParts property, placeholders and features."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dasf_geo.exceptions import PartError
from dasf_geo.protocol.parts import (
    MAX_PARTS,
    PartSpec,
    features_property,
    parse_features,
    parse_parts,
    part_index,
    parts_property,
    placeholder,
)

NC = "application/x-netcdf; xarray=Dataset"


@given(
    sizes=st.lists(
        st.tuples(st.integers(0, 10**12), st.sampled_from([NC, "x/y"])), max_size=20
    ),
    head=st.integers(0, 10**6),
)
@settings(max_examples=100, deadline=None)
def test_law_parse_gives_back_sizes_types_and_offsets(sizes, head):
    entries = [(head, "application/json"), *sizes]
    specs = parse_parts(parts_property(entries), sum(s for s, _ in entries))
    assert [(s.size, s.media_type) for s in specs] == entries
    assert [s.index for s in specs] == list(range(len(entries)))
    assert specs[0].offset == 0
    for before, after in itertools.pairwise(specs):
        assert after.offset == before.end


def test_the_property_is_compact_json():
    assert parts_property([(12, "application/json"), (5, NC)]) == (
        '[{"size":12,"type":"application/json"},'
        '{"size":5,"type":"application/x-netcdf; xarray=Dataset"}]'
    )


@pytest.mark.parametrize(
    ("value", "total", "message"),
    [
        ("not json", 1, "dasfGeoParts property is invalid: not JSON"),
        ("{}", 1, "expected a non-empty JSON list"),
        ("[]", 0, "expected a non-empty JSON list"),
        ('[{"size": 1}]', 1, "part 0 has no media 'type'"),
        ('[{"size": -1, "type": "application/json"}]', 1, "part 0 has no non-neg"),
        ('[{"size": true, "type": "application/json"}]', 1, "part 0 has no non-neg"),
        ('[{"size": 1, "type": "text/csv"}]', 1, "part 0 must be the application/json"),
        ("[1]", 1, "part 0 is not a {'size', 'type'} object"),
        (
            '[{"size": 5, "type": "application/json"}, {"size": 7, "type": "x/y"}]',
            13,
            "the parts add up to 12 bytes, but the payload has 13 bytes",
        ),
    ],
)
def test_bad_properties_are_named(value, total, message):
    with pytest.raises(PartError, match=message.replace("(", r"\(")):
        parse_parts(value, total)


def test_unknown_media_types_are_refused_by_name():
    value = parts_property([(2, "application/json"), (3, NC), (4, "text/csv")])
    with pytest.raises(PartError, match="part 2 has media type 'text/csv'") as info:
        parse_parts(value, 9, media_types=[NC])
    assert NC in str(info.value)  # says what the backend takes


def test_too_many_parts_are_refused():
    entries = [(0, "application/json")] + [(0, NC)] * MAX_PARTS
    with pytest.raises(PartError, match="at most"):
        parts_property(entries)
    with pytest.raises(PartError, match="more than the limit"):
        parse_parts(json.dumps([{"size": 0, "type": "application/json"}] * 2000), 0)


def test_a_list_is_taken_as_parsed_and_the_sum_check_can_be_skipped():
    specs = parse_parts([{"size": 3, "type": "application/json"}], None)
    assert specs == [PartSpec(0, 0, 3, "application/json")]
    assert specs[0].describe() == "part 0 (application/json, 3 bytes)"


def test_placeholders():
    assert placeholder(2) == {"$dasfGeoPart": 2}
    assert part_index(placeholder(2)) == 2
    assert part_index({"other": 1}) is None
    assert part_index("text") is None
    bad_ones = ({"$dasfGeoPart": 0}, {"$dasfGeoPart": "1"}, {"$dasfGeoPart": 1, "x": 2})
    for bad in bad_ones:
        with pytest.raises(PartError, match="a part placeholder must be"):
            part_index(bad)


def test_features():
    assert features_property() == "parts"
    assert parse_features("parts, other,") == {"parts", "other"}
    assert parse_features(None) == frozenset()
    assert parse_features(3) == frozenset()
