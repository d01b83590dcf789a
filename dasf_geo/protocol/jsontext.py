"""JSON text as DASF peers send it: parsed fast, nesting bounded (sans-I/O).

Every frame and every property value of JSON text goes through
:func:`loads_json` (or :func:`loads_strict_json`, which also refuses
``NaN``, ``Infinity`` and numbers beyond a float) and
:func:`parse_json_object`: ``json.loads`` with its encoding detection
skipped for the common case, and a depth limit of :data:`MAX_JSON_DEPTH`
checked before parsing (Python's own parser gives up with a
RecursionError near 1,000 levels).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dasf_geo.exceptions import ProtocolError

__all__ = [
    "MAX_JSON_DEPTH",
    "loads_json",
    "loads_strict_json",
    "parse_json_object",
]


_decode = json.JSONDecoder().decode

#: Deepest nesting of arrays and objects accepted in a frame (Python's own
#: parser gives up with a RecursionError near 1,000 levels).
MAX_JSON_DEPTH = 64


class _TooDeep(ValueError):
    """JSON that nests arrays and objects more than :data:`MAX_JSON_DEPTH`."""


class _NotStandard(ValueError):
    """``NaN``, ``Infinity`` or a number beyond a float in JSON text."""


# a string (skipped as a whole) or one bracket
_BRACKETS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_BRACKETS_TEXT = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _check_depth(text: bytes | str) -> None:
    """Raise :class:`_TooDeep` if ``text`` nests beyond :data:`MAX_JSON_DEPTH`.

    Costs two ``count`` calls for ordinary frames (fewer brackets than the
    limit cannot nest deeper); only frames with many brackets are scanned.
    """
    if isinstance(text, str):
        opening = text.count("[") + text.count("{")
        pattern: Any = _BRACKETS_TEXT
        opens: Any = ("[", "{")
    else:
        opening = text.count(b"[") + text.count(b"{")
        pattern, opens = _BRACKETS, (b"[", b"{")
    if opening <= MAX_JSON_DEPTH:
        return
    depth = 0
    for match in pattern.finditer(text):
        token = match.group()
        if len(token) != 1:
            continue  # a string
        if token in opens:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _TooDeep(
                    f"nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
                )
        else:
            depth -= 1


def _refuse_constant(name: str) -> Any:
    raise _NotStandard(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotStandard(f"the number {text[:40]} is too large for a float")
    return value


_strict_decode = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float
).decode


def loads_json(frame: bytes) -> Any:
    """``json.loads(frame)``, skipping its encoding detection when possible.

    ``json.loads`` reads bytes as UTF-8 (with ``surrogatepass``) whenever
    they start with ``{`` followed by a non-NUL byte, so such frames are
    decoded directly; anything else goes through ``json.loads``. Results
    and errors are those of ``json.loads``, plus a ``ValueError`` for
    arrays and objects nested more than :data:`MAX_JSON_DEPTH` levels.
    """
    _check_depth(frame)
    if frame[:1] == b"{" and frame[1:2] != b"\x00":
        return _decode(frame.decode("utf-8", "surrogatepass"))
    return json.loads(frame)


def loads_strict_json(frame: bytes | str) -> Any:
    """:func:`loads_json` that also refuses what is not standard JSON.

    ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond a float (such
    as ``1e999``, which Python reads as infinity) raise ``ValueError``:
    re-encoded they would not be JSON, and strict parsers (every browser)
    reject the whole frame.
    """
    _check_depth(frame)
    if isinstance(frame, bytes):
        if frame[:1] == b"{" and frame[1:2] != b"\x00":
            return _strict_decode(frame.decode("utf-8", "surrogatepass"))
        return json.loads(
            frame, parse_constant=_refuse_constant, parse_float=_finite_float
        )
    return _strict_decode(frame)


def parse_json_object(
    frame: bytes | bytearray | str, what: str = "message", *, strict: bool = False
) -> dict[str, Any]:
    """Parse a frame that must be a JSON object.

    Arrays and objects may nest at most :data:`MAX_JSON_DEPTH` levels.
    With ``strict``, ``NaN``, ``Infinity`` and numbers too large for a
    float are refused too (they are not JSON, and browsers reject them).

    Raises:
        ProtocolError: the frame is not UTF-8 JSON, not a JSON object, nests
            too deeply, or (``strict``) holds a non-standard number.
    """
    if isinstance(frame, bytearray):
        frame = bytes(frame)
    try:
        if strict:
            obj = loads_strict_json(frame)
        elif isinstance(frame, bytes):
            obj = loads_json(frame)
        else:
            _check_depth(frame)
            obj = json.loads(frame)
    except _TooDeep as exc:
        raise ProtocolError(f"the {what} {exc}") from None
    except _NotStandard as exc:
        raise ProtocolError(f"the {what} is not standard JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"the {what} is not valid JSON: {exc}") from exc
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise ProtocolError(f"the {what} nests too deeply") from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            f"the {what} must be a JSON object, got {type(obj).__name__}"
        )
    return obj
