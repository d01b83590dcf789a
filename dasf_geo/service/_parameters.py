"""Service parameters: named values, typed by their first value.

A parameter added with ``service.add_parameter("threshold", 280.0)`` is a
``float`` from then on: setting it to ``"hot"`` is refused with a
:class:`pydantic.ValidationError` naming the parameter and the expected
type (plain JSON types are checked strictly — ``"3"`` is not an ``int`` —
except that an ``int`` is a valid ``float``). Exposed parameters can be read
and set by callers (``~get_parameter``/``~set_parameter`` requests, the
gateway's ``/~parameters`` routes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = ["Parameter", "ParameterError", "Parameters"]

_STRICT = (bool, int, float, str, list, dict)


class ParameterError(KeyError):
    """An unknown (or, for callers, unexposed) parameter name.

    Its text starts with ``unknown parameter 'NAME'``.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


@dataclass
class Parameter:
    """One parameter: its value and how it may be changed."""

    name: str
    value: Any
    expose: bool = True
    monitor: bool = False
    disable_http_logs: bool = False
    type_: Any = field(default=None)

    def __post_init__(self) -> None:
        if self.type_ is None:
            self.type_ = Any if self.value is None else type(self.value)
        strict = self.type_ in _STRICT
        if self.type_ is float:
            # JSON has one number type: 1 is a fine value for a float
            self._adapter: TypeAdapter[Any] = TypeAdapter(float)
            self._strict = False
            self._check_float = True
        else:
            self._adapter = TypeAdapter(self.type_)
            self._strict = strict
            self._check_float = False

    @property
    def type_name(self) -> str:
        """The expected type, for messages and API info."""
        return "any" if self.type_ is Any else _type_name(self.type_)

    def validate(self, value: Any) -> Any:
        """``value`` converted to the parameter's type.

        Raises:
            pydantic.ValidationError: ``value`` is not of that type; the
                error names the parameter and the expected type.
        """
        if self._check_float and (
            isinstance(value, bool) or not isinstance(value, (int, float))
        ):
            raise self._error(value)
        try:
            return self._adapter.validate_python(value, strict=self._strict)
        except ValidationError:
            raise self._error(value) from None

    def _error(self, value: Any) -> ValidationError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        detail = InitErrorDetails(
            type=PydanticCustomError(
                "parameter_type",
                "parameter '{parameter}' expects {expected}, got {got}",
                {
                    "parameter": self.name,
                    "expected": self.type_name,
                    "got": f"{shown} ({type(value).__name__})",
                },
            ),
            loc=(self.name,),
            input=value,
        )
        return ValidationError.from_exception_data(f"parameter {self.name!r}", [detail])


class Parameters:
    """The parameters of one service (thread-safe).

    Args:
        on_update: called with ``(name, value)`` after each change of a
            parameter added with ``monitor=True``.
    """

    def __init__(self, on_update: Callable[[str, Any], None] | None = None) -> None:
        self._items: dict[str, Parameter] = {}
        self._lock = threading.Lock()
        self.on_update = on_update

    def add(
        self,
        name: str,
        value: Any,
        expose: bool = True,
        monitor: bool = False,
        disable_http_logs: bool = False,
    ) -> Parameter:
        """Add (or replace) parameter ``name``; its type is ``type(value)``.

        Raises:
            TypeError: ``name`` is not a non-empty str.
            ValueError: ``name`` starts with ``~`` or is longer than 200.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"a parameter name must be a non-empty str, got {name!r}")
        if name.startswith("~") or len(name) > 200:
            raise ValueError(
                f"invalid parameter name {name[:80]!r}: it must not start with '~' "
                "and be at most 200 characters long"
            )
        param = Parameter(name, value, expose, monitor, disable_http_logs)
        with self._lock:
            self._items[name] = param
        return param

    def _find(self, name: Any, exposed_only: bool) -> Parameter:
        with self._lock:
            param = self._items.get(name) if isinstance(name, str) else None
            known = sorted(
                n for n, p in self._items.items() if p.expose or not exposed_only
            )
        if param is None or (exposed_only and not param.expose):
            shown = name if isinstance(name, str) else repr(name)
            if isinstance(shown, str) and len(shown) > 80:
                shown = shown[:77] + "..."
            raise ParameterError(
                f"unknown parameter {shown!r}; the parameters are: "
                f"{', '.join(known) or 'none'}"
            )
        return param

    def get(self, name: str, *, exposed_only: bool = False) -> Any:
        """The value of ``name``.

        Raises:
            ParameterError: no such parameter (or not exposed, with
                ``exposed_only``).
        """
        return self._find(name, exposed_only).value

    def set(self, name: str, value: Any, *, exposed_only: bool = False) -> Any:
        """Validate ``value`` and make it the value of ``name``; return it.

        Raises:
            ParameterError: no such parameter (or not exposed).
            pydantic.ValidationError: ``value`` has the wrong type.
        """
        param = self._find(name, exposed_only)
        new = param.validate(value)
        with self._lock:
            param.value = new
        if param.monitor and self.on_update is not None:
            self.on_update(name, new)
        return new

    def exposed(self) -> dict[str, Any]:
        """``{name: value}`` of the exposed parameters."""
        with self._lock:
            return {n: p.value for n, p in self._items.items() if p.expose}

    def describe(self) -> dict[str, dict[str, Any]]:
        """``{name: {"type": ..., "monitor": ...}}`` of the exposed parameters."""
        with self._lock:
            return {
                n: {"type": p.type_name, "monitor": p.monitor}
                for n, p in self._items.items()
                if p.expose
            }

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
