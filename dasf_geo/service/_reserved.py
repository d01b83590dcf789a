"""How a service answers on its topic: entrypoints plus the reserved requests.

:class:`ServiceHandler` is a :class:`~dasf_geo.transport.handler.RequestHandler`:
requests for entrypoints go to the module's :class:`ModuleHandler`; requests
whose ``func_name`` starts with ``~`` are the service's own:

- ``{"func_name": "~list_parameters"}`` -> ``{name: value}`` (exposed ones)
- ``{"func_name": "~get_parameter", "parameter": NAME}`` -> the value
- ``{"func_name": "~set_parameter", "parameter": NAME, "value": V}`` -> the
  new value
- ``{"func_name": "~monitor", "variables": [..] | null, "start": ISO | null,
  "end": ISO | null}`` -> ``[{"variable", "value", "timestamp"}, ...]``
  (``"format": "csv"`` gives CSV text, ``"format": "sqlite"`` the SQLite
  file as ``{"filename", "media_type", "data": base64}``).

Any other ``~`` name gets the usual "unknown function" error. The API info
gains a ``"service"`` object (name, version, shadow, entrypoints with their
HTTP methods, parameters, the reserved requests), so that a gateway or a
dashboard knows what the service offers.

:class:`ServiceListener` turns an unknown parameter into an error reply
whose text starts with ``unknown parameter 'NAME'``; :class:`ShadowListener`
runs every request of its subscription but sends no reply at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pybase64
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dasf_geo.exceptions import RequestError
from dasf_geo.service import utilities
from dasf_geo.service._parameters import ParameterError
from dasf_geo.service._values import StoreError, parse_time, to_csv
from dasf_geo.service.handler import ModuleHandler
from dasf_geo.transport.listener import Listener

if TYPE_CHECKING:  # pragma: no cover
    from dasf_geo.service._service import Service

__all__ = [
    "RESERVED",
    "ServiceHandler",
    "ServiceListener",
    "ShadowListener",
    "describe_service",
    "generate_client",
]

#: the reserved ``func_name`` values a service answers
RESERVED = ("~list_parameters", "~get_parameter", "~set_parameter", "~monitor")
#: most variable names one ``~monitor`` request may list
MAX_VARIABLES = 1000
#: most records one ``~monitor`` reply holds (the newest ones)
MAX_RECORDS = 100_000


class _Reserved(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListParameters(_Reserved):
    func_name: Literal["~list_parameters"]


class GetParameter(_Reserved):
    func_name: Literal["~get_parameter"]
    parameter: str = Field(max_length=200)


class SetParameter(_Reserved):
    func_name: Literal["~set_parameter"]
    parameter: str = Field(max_length=200)
    value: Any


class Monitor(_Reserved):
    func_name: Literal["~monitor"]
    variables: list[str] | None = Field(None, max_length=MAX_VARIABLES)
    start: str | None = None
    end: str | None = None
    limit: int | None = Field(None, ge=1, le=MAX_RECORDS)
    format: Literal["json", "csv", "sqlite"] = "json"

    @field_validator("variables", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # "a,b" as the gateway's query parameter gives it
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()] or None
        return value

    @field_validator("start", "end")
    @classmethod
    def _iso(cls, value: str | None, info: Any) -> str | None:
        parse_time(value, info.field_name)  # raises ValueError with a hint
        return value


_MODELS: dict[str, type[_Reserved]] = {
    "~list_parameters": ListParameters,
    "~get_parameter": GetParameter,
    "~set_parameter": SetParameter,
    "~monitor": Monitor,
}


def reserved_name(payload: bytes | bytearray) -> tuple[str, dict[str, Any]] | None:
    """``(func_name, request)`` if ``payload`` is a reserved request, else None.

    Only a payload that contains ``"~`` is parsed here (a base64 NetCDF
    argument never does), so entrypoint calls pay nothing for it.
    """
    if b'"~' not in payload:
        return None
    try:
        request = json.loads(payload)
    except ValueError:
        return None  # answered by the module handler's usual error
    if not isinstance(request, dict):
        return None
    name = request.get("func_name")
    if isinstance(name, str) and name in _MODELS:
        return name, request
    return None


class ServiceHandler(ModuleHandler):
    """Answers a service's requests on one topic.

    Args:
        module_cls: the module model of the service's entrypoints.
        service: the service (parameters, store, version).
        topic: the topic this handler answers on.
    """

    def __init__(self, module_cls: Any, service: Service, topic: str) -> None:
        super().__init__(module_cls)
        self.service = service
        self.topic = topic

    def handle(  # type: ignore[override]
        self, payload: bytes | bytearray, *args: Any, **kwargs: Any
    ) -> Any:
        """Run a reserved request, or hand the request to the entrypoints.

        Raises:
            pydantic.ValidationError: an invalid request or parameter value.
            ParameterError: an unknown or unexposed parameter.
            StoreError: the monitoring store cannot be read.
        """
        if kwargs.get("parts") is None:
            found = reserved_name(payload)
            if found is not None:
                name, request = found
                model = _MODELS[name].model_validate(request)
                result = self._reserved(model)
                return json.dumps(result, allow_nan=False).encode("utf-8")
        return super().handle(payload, *args, **kwargs)

    def _reserved(self, request: _Reserved) -> Any:
        params = self.service.parameters
        if isinstance(request, ListParameters):
            return params.exposed()
        if isinstance(request, GetParameter):
            return params.get(request.parameter, exposed_only=True)
        if isinstance(request, SetParameter):
            return params.set(request.parameter, request.value, exposed_only=True)
        assert isinstance(request, Monitor)
        store = self.service.monitoring
        if request.format == "sqlite":
            return {
                "filename": f"{self.service.name}_{self.service.version}.sqlite",
                "media_type": "application/vnd.sqlite3",
                "data": pybase64.b64encode(store.sqlite_bytes()).decode("ascii"),
            }
        records = store.query(
            request.variables,
            request.start,
            request.end,
            limit=request.limit or MAX_RECORDS,
        )
        if request.format == "csv":
            return to_csv(records)
        return records

    def api_info(self) -> str:
        """The module's API info plus the ``"service"`` object (cached)."""
        if self._api_info is None:
            info = json.loads(super().api_info())
            info["service"] = self.service.describe()
            self._api_info = json.dumps(info)
        return self._api_info


def describe_service(svc: Service) -> dict[str, Any]:
    """The ``"service"`` object of a service's API info."""
    return {
        "name": svc.name,
        "version": svc.version,
        "shadow": svc.shadow,
        "versioned_topic": utilities.versioned_topic(svc.name, svc.version),
        "entrypoints": {
            name: {
                "method": ep.method,
                "monitor": ep.monitor,
                "disable_http_logs": ep.disable_http_logs,
                "route": _json_safe(ep.route_kwargs),
            }
            for name, ep in svc.entrypoints.items()
        },
        "parameters": svc.parameters.describe(),
        "periodic_tasks": [
            {"name": t.name, "seconds": t.seconds} for t in svc.periodic_tasks
        ],
        "reserved": list(RESERVED),
    }


def generate_client(
    svc: Service,
    broker: str | None = None,
    websocket_url: str | None = None,
    **options: Any,
) -> str:
    """The source of a client module for ``svc``'s entrypoints.

    The client calls them through ``broker`` (default: the running
    service's, or :func:`~dasf_geo.service.utilities.get_broker_url`);
    ``options`` go to :meth:`BackendModule.generate` (``line_length``…).

    Raises:
        ConfigurationError: no entrypoints, or an invalid broker URL.
    """
    from dasf_geo.service.dynamic import messaging_config

    if broker is None and websocket_url is None:
        broker = svc.broker_url or utilities.get_broker_url()
    config = messaging_config(svc.name, broker, websocket_url=websocket_url)
    return str(svc.module_model(config).generate(**options))


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return repr(value)


class ServiceListener(Listener):
    """A listener whose unknown-parameter and store errors read plainly."""

    def _execute(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._execute(data, *args, **kwargs)
        except ParameterError as exc:
            raise RequestError(str(exc)) from exc
        except StoreError as exc:
            raise RequestError(f"error reading the monitoring store: {exc}") from exc


class ShadowListener(ServiceListener):
    """Runs every request of its own subscription and answers none of them.

    A shadow version subscribes to the main version's topic under its own
    subscription name, so the broker gives it a copy of every request;
    callers only ever get the main version's replies. Requests are
    acknowledged once they ran.
    """

    def _reply_now(self, incoming: Any, result: Any, done: Any) -> bool:
        return False  # every reply takes the (suppressed) slow path

    async def _reply(
        self,
        incoming: Any,
        payload: Any,
        message_type: Any = None,
        status: Any = None,
        _final: bool = True,
        **extra: Any,
    ) -> None:
        if not _final:
            return  # a progress report
        self.answered += 1
        self._ack(incoming.message_ids)
