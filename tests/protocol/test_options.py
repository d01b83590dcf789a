"""Per-call transfer options: their properties, parsing and context blocks."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dasf_geo.exceptions import ConfigurationError, ProtocolError
from dasf_geo.protocol.options import (
    EXT_COMPRESSION,
    EXT_FRAGMENT_SIZE,
    EXT_MAX_SIZE,
    MIN_FRAGMENT_SIZE,
    TransferOptions,
    current_transfer_options,
    format_size,
    parse_size,
    transfer_options,
)

options = st.builds(
    TransferOptions,
    fragment_size=st.none() | st.integers(MIN_FRAGMENT_SIZE, 1 << 40),
    compression=st.none() | st.integers(1, 9),
    max_size=st.none() | st.integers(1, 1 << 50),
)


@given(options)
def test_properties_round_trip(opts: TransferOptions) -> None:
    props = opts.properties()
    assert all(isinstance(v, str) for v in props.values())
    assert TransferOptions.from_properties(props) == opts
    # the other properties of a request are left alone
    assert TransferOptions.from_properties({**props, "messageType": "request"}) == opts


def test_no_options_no_properties() -> None:
    assert TransferOptions().properties() == {}
    assert not TransferOptions()
    assert TransferOptions(max_size=1)
    assert TransferOptions.from_properties({}) == TransferOptions()


def test_json_integers_are_accepted_too() -> None:
    assert TransferOptions.from_properties(
        {EXT_COMPRESSION: 3, EXT_MAX_SIZE: 10}
    ) == TransferOptions(compression=3, max_size=10)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {EXT_COMPRESSION: "10"},
            "property 'dasfGeoCompression' must be a zlib level 1-9, got 10",
        ),
        (
            {EXT_COMPRESSION: "0"},
            "property 'dasfGeoCompression' must be a zlib level 1-9, got 0",
        ),
        (
            {EXT_COMPRESSION: "fast"},
            "property 'dasfGeoCompression' must be a decimal integer, got 'fast'",
        ),
        (
            {EXT_COMPRESSION: True},
            "property 'dasfGeoCompression' must be a decimal integer, got True",
        ),
        (
            {EXT_COMPRESSION: "-3"},
            "property 'dasfGeoCompression' must be a decimal integer, got '-3'",
        ),
        (
            {EXT_COMPRESSION: "\uff14"},  # a full-width digit 4
            "property 'dasfGeoCompression' must be a decimal integer, got '\uff14'",
        ),
        (
            {EXT_FRAGMENT_SIZE: "100"},
            "property 'dasfGeoFragmentSize' must be an integer of at least 1024 "
            "(base64 characters), got 100",
        ),
        (
            {EXT_FRAGMENT_SIZE: 2.5e6},
            "property 'dasfGeoFragmentSize' must be a decimal integer, got 2500000.0",
        ),
        (
            {EXT_MAX_SIZE: "0"},
            "property 'dasfGeoMaxSize' must be a positive number of bytes, got 0",
        ),
        (
            {EXT_MAX_SIZE: "9" * 5000},
            "property 'dasfGeoMaxSize': '999999999999999999999999999999'… is far "
            "too large",
        ),
        (
            {EXT_MAX_SIZE: ["1"]},
            "property 'dasfGeoMaxSize' must be a decimal integer, got ['1']",
        ),
    ],
)
def test_malformed_properties_name_the_property(props, message) -> None:
    with pytest.raises(ProtocolError) as caught:
        TransferOptions.from_properties(props)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"compression": 0}, "compression must be a zlib level 1-9, got 0"),
        ({"compression": True}, "compression must be a zlib level 1-9, got True"),
        ({"compression": "4"}, "compression must be a zlib level 1-9, got '4'"),
        (
            {"fragment_size": 4},
            "fragment_size must be an integer of at least 1024 (base64 "
            "characters), got 4",
        ),
        ({"max_size": -1}, "max_size must be a positive number of bytes, got -1"),
        ({"max_size": 1.5}, "max_size must be a positive number of bytes, got 1.5"),
    ],
)
def test_bad_values_are_configuration_errors(kwargs, message) -> None:
    with pytest.raises(ConfigurationError) as caught:
        TransferOptions(**kwargs)
    assert str(caught.value) == message


def test_merge_takes_what_the_override_sets() -> None:
    base = TransferOptions(fragment_size=2048, compression=1)
    merged = base.merge(TransferOptions(compression=9, max_size=5))
    assert merged == TransferOptions(fragment_size=2048, compression=9, max_size=5)
    assert base.merge(None) is base
    assert base.merge(TransferOptions()) is base


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("123", 123),
        (123, 123),
        ("50MB", 50_000_000),
        ("50 mb", 50_000_000),
        ("1.5GiB", 3 << 29),
        ("2kB", 2000),
        ("2KiB", 2048),
        ("1TB", 10**12),
        (".5k", 500),
    ],
)
def test_parse_size(text, size) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "5XB", "-5", "1e6", "5 M B", True, -1])
def test_parse_size_refuses_what_is_not_a_size(text) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(999) == "999 bytes"
    assert format_size(104_857_600) == "104,857,600 bytes (105 MB)"
    assert format_size(30_000) == "30,000 bytes (30 kB)"
    assert format_size(2 * 10**9) == "2,000,000,000 bytes (2 GB)"


def test_blocks_nest_and_end() -> None:
    assert current_transfer_options() == TransferOptions()
    with transfer_options(compression=4, max_size="1MB") as outer:
        assert outer == TransferOptions(compression=4, max_size=1_000_000)
        with transfer_options(TransferOptions(fragment_size=4096), compression=2):
            assert current_transfer_options() == TransferOptions(
                fragment_size=4096, compression=2, max_size=1_000_000
            )
        assert current_transfer_options() == outer
    assert current_transfer_options() == TransferOptions()


def test_a_block_ends_on_error_and_refuses_bad_values() -> None:
    with pytest.raises(KeyError), transfer_options(compression=4):
        raise KeyError("x")
    assert current_transfer_options() == TransferOptions()
    with pytest.raises(ConfigurationError, match="max_size: 'lots' is not a size"):
        transfer_options(max_size="lots").__enter__()
    with pytest.raises(ConfigurationError, match="zlib level 1-9, got 12"):
        transfer_options(compression=12).__enter__()
    assert current_transfer_options() == TransferOptions()


def test_blocks_reach_tasks_but_not_other_threads() -> None:
    seen: dict[str, TransferOptions] = {}

    async def task() -> None:
        seen["task"] = current_transfer_options()

    def thread() -> None:
        seen["thread"] = current_transfer_options()

    with transfer_options(compression=3):
        asyncio.run(task())
        worker = threading.Thread(target=thread)
        worker.start()
        worker.join()
    assert seen["task"] == TransferOptions(compression=3)
    # a thread starts with a fresh context (as threading does)
    assert seen["thread"] == TransferOptions()


def test_options_from_a_dict_or_nothing() -> None:
    assert TransferOptions.of(None) == TransferOptions()
    opts = TransferOptions(compression=2)
    assert TransferOptions.of(opts) is opts
    assert TransferOptions.of({"max_size": "2kB", "compression": 1}) == (
        TransferOptions(compression=1, max_size=2000)
    )
    assert opts.merge({"fragment_size": 2048}) == TransferOptions(2048, 2)
    with transfer_options({"compression": 5}, max_size=10) as here:
        assert here == TransferOptions(compression=5, max_size=10)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"level": 3}, "unknown transfer option(s) 'level'; valid are: fragment_size"),
        ({"max_size": "big"}, "max_size: 'big' is not a size"),
        ({"compression": "4"}, "compression must be a zlib level 1-9, got '4'"),
        ([("compression", 4)], "must be a TransferOptions or a dict"),
        (4, "got int"),
    ],
)
def test_options_of_anything_else_name_the_problem(value, message) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        TransferOptions.of(value)
