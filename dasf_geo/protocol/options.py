"""Per-call transfer options: fragment size, compression, a hard size limit.

A caller can ask, for one call, that its request and reply travel in
fragments of at most ``fragment_size`` base64 characters, that a Dataset or
DataArray be sent as zlib-compressed NetCDF4, and that nothing above
``max_size`` bytes be sent at all. They ride along as three extension
properties of the request (other DASF peers ignore them)::

    dasfGeoFragmentSize = "65536"     largest payload of one message (base64 chars)
    dasfGeoCompression  = "4"         zlib level 1-9 for Dataset/DataArray values
    dasfGeoMaxSize      = "50000000"  largest request or reply, in bytes

Callers set them per call (``options=`` of the clients' ``call`` and
``request``), for every call in a block (:func:`transfer_options`) or per
service (``dasf_geo.connect(..., transfer=...)``). A backend function sets
its own with ``@configure(transfer=...)``; the backend then applies the
smaller fragment size and the smaller limit of the two.

Values are decimal integers (as strings, like every Pulsar property; plain
JSON integers are accepted too). :meth:`TransferOptions.from_properties`
checks them, so a backend can answer a malformed value with an error that
names the property.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
from collections.abc import Iterator, Mapping
from typing import Any

from dasf_geo.exceptions import ConfigurationError, ProtocolError
from dasf_geo.protocol.constants import EXT_COMPRESSION, EXT_FRAGMENT_SIZE, EXT_MAX_SIZE

__all__ = [
    "EXT_COMPRESSION",
    "EXT_FRAGMENT_SIZE",
    "EXT_MAX_SIZE",
    "MIN_FRAGMENT_SIZE",
    "TOO_LARGE_ERROR",
    "TransferOptions",
    "current_transfer_options",
    "format_size",
    "parse_size",
    "transfer_options",
]

#: The ``type`` of the structured error (``dasfGeoErrors``) a backend sends
#: instead of a reply above the caller's ``dasfGeoMaxSize``; its ``ctx``
#: holds ``size`` and ``limit`` in bytes.
TOO_LARGE_ERROR = "payload_too_large"

#: The smallest fragment size one may ask for: smaller fragments only add
#: messages (each carries ~200 bytes of properties), they never help.
MIN_FRAGMENT_SIZE = 1024

#: Largest value of any option (well above any payload that fits a disk).
_MAX_VALUE = 1 << 62

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``50000000``, ``"50MB"``, ``"1.5 GiB"``.

    Units are decimal (``kB``, ``MB``, ``GB``, ``TB`` = powers of 1000) or
    binary (``KiB``, ``MiB``, ``GiB``, ``TiB``); case does not matter.

    Raises:
        ValueError: not a size; the message shows what is accepted.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a size in bytes, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a size cannot be negative, got {text}")
        return text
    match = _SIZE.match(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"{text!r} is not a size; write bytes (50000000) or a number with "
            "a unit: kB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_size(size: int) -> str:
    """``size`` bytes as text for messages: ``"104,857,600 bytes (105 MB)"``."""
    if size < 10_000:
        return f"{size:,} bytes"
    for unit, factor in (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2)):
        if size >= factor:
            return f"{size:,} bytes ({size / factor:.3g} {unit})"
    return f"{size:,} bytes ({size / 1000:.3g} kB)"


#: option name -> (property, lowest, highest, what it must be)
_RULES: dict[str, tuple[str, int, int, str]] = {
    "fragment_size": (
        EXT_FRAGMENT_SIZE,
        MIN_FRAGMENT_SIZE,
        _MAX_VALUE,
        f"an integer of at least {MIN_FRAGMENT_SIZE} (base64 characters)",
    ),
    "compression": (EXT_COMPRESSION, 1, 9, "a zlib level 1-9"),
    "max_size": (EXT_MAX_SIZE, 1, _MAX_VALUE, "a positive number of bytes"),
}


def _problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for option ``name`` (None: nothing)."""
    if value is None:
        return None
    _, low, high, what = _RULES[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be {what}, got {value!r:.60}"
    if not low <= value <= high:
        return f"must be {what}, got {value}"
    return None


@dataclasses.dataclass(frozen=True)
class TransferOptions:
    """How one call's request and reply travel (all optional).

    Attributes:
        fragment_size: the largest payload of one message, in base64
            characters (at least :data:`MIN_FRAGMENT_SIZE`). The caller cuts
            its request with it; a dasf_geo backend cuts the reply with it,
            but never into fragments larger than its own
            ``max_payload_size``.
        compression: zlib level 1-9: Dataset and DataArray values of the
            call (arguments and the result) travel as compressed NetCDF4
            instead of NetCDF3. A function whose data options force NetCDF3
            (e.g. for the web map) sends its result uncompressed.
        max_size: the largest request and the largest reply of the call,
            in bytes (after base64 decoding). A larger request is not sent;
            a backend refuses to send a larger reply, and the caller stops
            receiving one from backends that ignore the option. Either way
            :class:`~dasf_geo.exceptions.PayloadTooLarge` says the size and
            the limit.

    Raises:
        ConfigurationError: a value is out of range or of the wrong type.

    Example:
        >>> TransferOptions(compression=4).properties()
        {'dasfGeoCompression': '4'}
    """

    fragment_size: int | None = None
    compression: int | None = None
    max_size: int | None = None

    def __post_init__(self) -> None:
        for name in _RULES:
            problem = _problem(name, getattr(self, name))
            if problem is not None:
                raise ConfigurationError(f"{name} {problem}")

    def __bool__(self) -> bool:
        # on every call's path: no dataclasses.astuple (it deep-copies)
        return (
            self.fragment_size is not None
            or self.compression is not None
            or self.max_size is not None
        )

    @classmethod
    def of(cls, value: TransferOptions | Mapping[str, Any] | None) -> TransferOptions:
        """``value`` as options: options as they are, a dict of them, or None.

        A dict's ``max_size`` may be a size with a unit (``"50MB"``).

        Raises:
            ConfigurationError: anything else, an unknown name or a bad value.
        """
        if value is None:
            return _NO_OPTIONS
        if isinstance(value, TransferOptions):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(_RULES))
            if unknown:
                raise ConfigurationError(
                    f"unknown transfer option(s) {', '.join(map(repr, unknown))}; "
                    f"valid are: {', '.join(_RULES)}"
                )
            values = dict(value)
            size = values.get("max_size")
            if isinstance(size, str):
                try:
                    values["max_size"] = parse_size(size)
                except ValueError as exc:
                    raise ConfigurationError(f"max_size: {exc}") from None
            return cls(**values)
        raise ConfigurationError(
            "transfer options must be a TransferOptions or a dict of fragment_size, "
            f"compression and max_size, got {type(value).__name__}"
        )

    def merge(
        self, override: TransferOptions | Mapping[str, Any] | None
    ) -> TransferOptions:
        """These options with every option set in ``override`` taking precedence.

        ``override`` may be a dict of options (see :meth:`of`).
        """
        override = TransferOptions.of(override)
        if not override:
            return self
        update = {
            f.name: getattr(override, f.name)
            for f in dataclasses.fields(override)
            if getattr(override, f.name) is not None
        }
        return dataclasses.replace(self, **update)

    def properties(self) -> dict[str, str]:
        """The request properties that carry these options."""
        props = {}
        if self.fragment_size is not None:
            props[EXT_FRAGMENT_SIZE] = str(self.fragment_size)
        if self.compression is not None:
            props[EXT_COMPRESSION] = str(self.compression)
        if self.max_size is not None:
            props[EXT_MAX_SIZE] = str(self.max_size)
        return props

    @classmethod
    def from_properties(cls, properties: Mapping[str, Any]) -> TransferOptions:
        """The options a request's properties carry (none: all None).

        Raises:
            ProtocolError: a property holds something other than an integer
                in its range; the message names the property.
        """
        values: dict[str, int | None] = {}
        for name, (key, *_) in _RULES.items():
            raw = properties.get(key)
            value = None if raw is None else _int_value(key, raw)
            problem = _problem(name, value)
            if problem is not None:
                raise ProtocolError(f"property {key!r} {problem}")
            values[name] = value
        return cls(**values)


_NO_OPTIONS = TransferOptions()


def _int_value(key: str, raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.strip().isdigit():
        if len(raw) > 20:
            raise ProtocolError(f"property {key!r}: {raw[:30]!r}… is far too large")
        return int(raw)
    raise ProtocolError(f"property {key!r} must be a decimal integer, got {raw!r:.60}")


_CURRENT: contextvars.ContextVar[TransferOptions | None] = contextvars.ContextVar(
    "dasf_geo_transfer_options", default=None
)


def current_transfer_options() -> TransferOptions:
    """The options set by the innermost :func:`transfer_options` block."""
    return _CURRENT.get() or _NO_OPTIONS


@contextlib.contextmanager
def transfer_options(
    options: TransferOptions | Mapping[str, Any] | None = None,
    *,
    fragment_size: int | None = None,
    compression: int | None = None,
    max_size: int | str | None = None,
) -> Iterator[TransferOptions]:
    """Apply transfer options to every call made in this block.

    Works for every way of calling (generated stubs, ``send_request``,
    :func:`dasf_geo.connect` services, the clients) and for asyncio tasks
    started inside the block. It is a context variable: a thread started
    inside the block does not see it (use a block in the thread).
    Options of an outer block stay in force unless set again here; options
    passed to one call override both.

    Args:
        options: options to apply (or a dict of them); the keywords below
            override them.
        fragment_size, compression: see :class:`TransferOptions`.
        max_size: bytes, or a size with a unit (``"50MB"``, ``"2GiB"``).

    Example:
        >>> with transfer_options(compression=4, max_size="500MB") as opts:
        ...     opts.max_size
        500000000

    Raises:
        ConfigurationError: a value is out of range or of the wrong type.
    """
    try:
        size = None if max_size is None else parse_size(max_size)
    except ValueError as exc:
        raise ConfigurationError(f"max_size: {exc}") from None
    here = TransferOptions.of(options).merge(
        TransferOptions(fragment_size, compression, size)
    )
    merged = current_transfer_options().merge(here)
    token = _CURRENT.set(merged)
    try:
        yield merged
    finally:
        _CURRENT.reset(token)
