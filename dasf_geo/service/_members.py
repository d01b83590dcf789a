"""The members of a dynamic client's service: functions and remote classes.

:func:`_build_members` turns a backend's API info into what a
:class:`~dasf_geo.service.dynamic.Service` offers as attributes: one Python
function per backend function (signature and docstring from its JSON
schema, see :mod:`dasf_geo.service._signature`) and one
:class:`_RemoteClass` per backend class, whose instances send the
constructor's arguments with every method call. Each call hands the request
(``{"func_name": ...}`` or a class request) and the member's signature to
the service's ``send``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dasf_geo.service._signature import _Signature

__all__: list[str] = []


def _make_function(
    sig: _Signature, call: Callable[[dict[str, Any], _Signature], Any]
) -> Callable[..., Any]:
    def function(*args: Any, **kwargs: Any) -> Any:
        return call(sig.bind(args, kwargs), sig)

    function.__name__ = function.__qualname__ = sig.name
    function.__doc__ = sig.docstring()
    function.__signature__ = sig.signature()  # type: ignore[attr-defined]
    return function


class _RemoteClass:
    """Calling it (with the constructor's arguments) gives a remote instance."""

    def __init__(
        self,
        name: str,
        init: _Signature,
        methods: dict[str, _Signature],
        send: Callable[[dict[str, Any], _Signature], Any],
    ) -> None:
        self.__name__ = name
        self.__doc__ = init.docstring()
        self.__signature__ = init.signature()
        self._init = init
        self._methods = methods
        self._send = send

    def __call__(self, *args: Any, **kwargs: Any) -> _RemoteInstance:
        return _RemoteInstance(self, self._init.bind(args, kwargs))

    @property
    def methods(self) -> list[str]:
        """The names of the class's remote methods."""
        return list(self._methods)

    def __repr__(self) -> str:
        return f"<remote class {self.__name__}{self.__signature__}>"


class _RemoteInstance:
    """A remote object: the constructor arguments are sent with every call."""

    def __init__(self, cls: _RemoteClass, init_args: dict[str, Any]) -> None:
        self._cls = cls
        self._init_args = init_args

    def __getattr__(self, name: str) -> Callable[..., Any]:
        cls = self.__dict__.get("_cls")
        if cls is None or name not in cls._methods:
            known = ", ".join(cls._methods) if cls else ""
            raise AttributeError(
                f"remote class {cls.__name__ if cls else '?'} has no method "
                f"{name!r}; its methods are: {known or 'none'}"
            )
        sig = cls._methods[name]
        init_args = self._init_args

        def send(fields: dict[str, Any], sig: _Signature) -> Any:
            request = {
                "class_name": cls.__name__,
                **init_args,
                "function": {"func_name": sig.name, **fields},
            }
            return cls._send(request, sig)

        return _make_function(sig, send)

    def __dir__(self) -> list[str]:
        return sorted(self._cls._methods)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r:.40}" for k, v in self._init_args.items())
        return f"<remote {self._cls.__name__}({args})>"


def _build_members(
    api_info: Mapping[str, Any], send: Callable[[dict[str, Any], _Signature], Any]
) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for func in api_info.get("functions") or []:
        sig = _Signature.from_schema(
            func["name"],
            func.get("rpc_schema") or {},
            {"func_name"},
            func.get("return_schema"),
        )

        def send_function(
            fields: dict[str, Any], sig: _Signature, name: str = func["name"]
        ) -> Any:
            return send({"func_name": name, **fields}, sig)

        members[func["name"]] = _make_function(sig, send_function)
    for cls in api_info.get("classes") or []:
        init = _Signature.from_schema(
            cls["name"], cls.get("rpc_schema") or {}, {"class_name", "function"}
        )
        methods = {
            m["name"]: _Signature.from_schema(
                m["name"],
                m.get("rpc_schema") or {},
                {"func_name"},
                m.get("return_schema"),
            )
            for m in cls.get("methods") or []
        }
        members[cls["name"]] = _RemoteClass(cls["name"], init, methods, send)
    return members
