"""Multipart requests: the JSON of a request followed by raw binary parts (sans-I/O).

A JSON request carries a Dataset argument as base64 NetCDF text inside the
JSON, and the transport base64-encodes that JSON once more. Between dasf_geo
callers and dasf_geo backends a request can instead be *multipart*: its
payload bytes are the UTF-8 JSON of the request followed by the raw bytes of
each binary part, and the ``dasfGeoParts`` property says how to cut them::

    payload     = JSON text | part 1 bytes | part 2 bytes | ...
    dasfGeoParts = '[{"size": 57, "type": "application/json"},
                     {"size": 5000512, "type": "application/x-netcdf; xarray=Dataset"}]'

In the JSON, the value of an argument sent as a part is the placeholder
``{"$dasfGeoPart": n}`` (``n`` counts from 1; entry 0 is the JSON part).
The payload then travels like any other: base64-encoded once by the
transport and fragmented if it is large.

Only callers that know the backend understands it use this form: dasf_geo
backends list ``parts`` in the ``dasfGeoFeatures`` property of their
``pong``, ``info`` and ``api_info`` replies (other peers ignore the
property and never see a multipart request).

The law: ``parse_parts(parts_property(sizes), sum(sizes))`` gives back the
sizes and types with their offsets in the payload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dasf_geo.exceptions import PartError
from dasf_geo.protocol.constants import (
    EXT_PARTS,
    FEATURE_PARTS,
    JSON_MEDIA_TYPE,
    PART_KEY,
)

__all__ = [
    "BACKEND_FEATURES",
    "MAX_PARTS",
    "PartSpec",
    "features_property",
    "parse_features",
    "parse_parts",
    "part_index",
    "parts_property",
    "placeholder",
]

#: The most parts one request may have (the JSON part included).
MAX_PARTS = 1024
#: The longest ``dasfGeoParts`` text that is parsed at all.
_MAX_PROPERTY_CHARS = 200 * MAX_PARTS
#: The longest media type accepted in ``dasfGeoParts``.
_MAX_TYPE_CHARS = 200

#: What a dasf_geo backend understands, in ``dasfGeoFeatures``.
BACKEND_FEATURES = (FEATURE_PARTS,)


@dataclass(frozen=True)
class PartSpec:
    """Where one part of a multipart payload lies.

    Attributes:
        index: the part's number (0 is the JSON part).
        offset: its first byte in the payload.
        size: its number of bytes.
        media_type: what its bytes are (``application/json`` for part 0).
    """

    index: int
    offset: int
    size: int
    media_type: str

    @property
    def end(self) -> int:
        """The offset just past the part's last byte."""
        return self.offset + self.size

    def describe(self) -> str:
        """``part 1 (application/x-netcdf; xarray=Dataset, 5000 bytes)``."""
        return f"part {self.index} ({self.media_type}, {self.size} bytes)"


def placeholder(index: int) -> dict[str, int]:
    """The JSON value that stands for binary part ``index`` (from 1)."""
    return {PART_KEY: index}


def part_index(value: Any) -> int | None:
    """The part number of a placeholder, or None if ``value`` is not one.

    Raises:
        PartError: ``value`` has the placeholder key, but is not exactly
            ``{"$dasfGeoPart": n}`` with an integer ``n >= 1``.
    """
    if type(value) is not dict or PART_KEY not in value:
        return None
    index = value[PART_KEY]
    if len(value) != 1 or type(index) is not int or index < 1:
        raise PartError(
            f"a part placeholder must be {{{PART_KEY!r}: n}} with an integer "
            f"n >= 1, got {json.dumps(value)[:100]}"
        )
    return index


def parts_property(sizes: Sequence[tuple[int, str]]) -> str:
    """The ``dasfGeoParts`` value for parts of ``(size, media type)``.

    The first entry is the JSON part (its type is ``application/json``).

    Raises:
        PartError: no parts, too many, or the first is not the JSON part.
    """
    if not sizes or sizes[0][1] != JSON_MEDIA_TYPE:
        raise PartError(f"the first part of a request must be {JSON_MEDIA_TYPE}")
    if len(sizes) > MAX_PARTS:
        raise PartError(
            f"a request may have at most {MAX_PARTS} parts, got {len(sizes)}"
        )
    return json.dumps(
        [{"size": int(size), "type": str(kind)} for size, kind in sizes],
        separators=(",", ":"),
    )


def _fail(text: str) -> PartError:
    return PartError(f"the {EXT_PARTS} property is invalid: {text}")


def parse_parts(
    value: Any, total: int | None, media_types: Iterable[str] | None = None
) -> list[PartSpec]:
    """Cut a payload of ``total`` bytes as its ``dasfGeoParts`` property says.

    Args:
        value: the property (JSON text; a list is taken as already parsed).
        total: the payload's size in bytes (None: do not check the sum).
        media_types: the media types the binary parts may have (default:
            any); part 0 must always be ``application/json``.

    Returns:
        One :class:`PartSpec` per part, the JSON part first.

    Raises:
        PartError: the property is not a list of ``{"size", "type"}``
            objects, the sizes do not add up to ``total``, a part has a media
            type not in ``media_types``, or there are too many parts; the
            message names the part.
    """
    if isinstance(value, str):
        if len(value) > _MAX_PROPERTY_CHARS:
            raise _fail(f"it has {len(value)} characters, more than the limit")
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise _fail(f"not JSON ({exc})") from None
    if not isinstance(value, list) or not value:
        raise _fail("expected a non-empty JSON list of {'size', 'type'} objects")
    if len(value) > MAX_PARTS:
        raise _fail(f"{len(value)} parts, more than the limit of {MAX_PARTS}")
    allowed = None if media_types is None else frozenset(media_types)
    specs = []
    offset = 0
    for index, entry in enumerate(value):
        if not isinstance(entry, dict):
            raise _fail(f"part {index} is not a {{'size', 'type'}} object")
        size, kind = entry.get("size"), entry.get("type")
        if type(size) is not int or size < 0:
            raise _fail(f"part {index} has no non-negative integer 'size'")
        if not isinstance(kind, str) or not kind or len(kind) > _MAX_TYPE_CHARS:
            raise _fail(f"part {index} has no media 'type'")
        if index == 0 and kind != JSON_MEDIA_TYPE:
            raise _fail(f"part 0 must be the {JSON_MEDIA_TYPE} text, not {kind!r}")
        if index > 0 and allowed is not None and kind not in allowed:
            raise PartError(
                f"part {index} has media type {kind!r}, which this backend does "
                f"not take; it takes {', '.join(sorted(allowed)) or 'none'}"
            )
        specs.append(PartSpec(index, offset, size, kind))
        offset += size
    if total is not None and offset != total:
        raise PartError(
            f"the parts add up to {offset} bytes, but the payload has {total} "
            f"bytes (sizes in {EXT_PARTS}: {', '.join(str(s.size) for s in specs)})"
        )
    return specs


def features_property(features: Iterable[str] = BACKEND_FEATURES) -> str:
    """The ``dasfGeoFeatures`` value: the features, comma-separated."""
    return ",".join(features)


def parse_features(value: Any) -> frozenset[str]:
    """The features listed in a ``dasfGeoFeatures`` property (empty if none)."""
    if not isinstance(value, str):
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())
