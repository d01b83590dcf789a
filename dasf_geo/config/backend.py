"""Configuration models of backend functions, classes and modules.

:class:`FunctionConfig` and :class:`ClassConfig` are what
:func:`dasf_geo.configure` stores on a function, method or class;
:class:`ModuleConfig` configures a whole backend module (messaging, logging,
members, generated stubs). All of them reject unknown options.
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ImportString,
    PlainSerializer,
    TypeAdapter,
    field_validator,
)

from dasf_geo.config import api as _api
from dasf_geo.config.logging import LoggingConfig
from dasf_geo.config.messaging import (
    URL_OPTIONS,
    PulsarConfig,
    WebsocketURLConfig,
    config_class_for,
    environment_options,
)
from dasf_geo.config.registry import ApiRegistry
from dasf_geo.data import DataOptions
from dasf_geo.exceptions import ConfigurationError
from dasf_geo.protocol.options import TransferOptions
from dasf_geo.templates import Template

__all__ = [
    "BaseConfig",
    "ClassConfig",
    "FunctionConfig",
    "ModuleConfig",
    "messaging_config_from",
    "object_to_string",
]

_IMPORT = TypeAdapter(ImportString)


def object_to_string(obj: Any) -> str:
    """The dotted import path of a function or class (``module.qualname``)."""
    module = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", repr(obj))
    if not module or module == "builtins":
        return str(name)
    return f"{module}.{name}"


def _to_callable(value: Any) -> Any:
    """A callable, or a dotted path (``"package.module.func"``) to import one."""
    if isinstance(value, str):
        value = _IMPORT.validate_python(value)
    if not callable(value):
        raise ValueError(
            f"expected a callable or the dotted import path of one, got "
            f"{type(value).__name__} {value!r:.80}"
        )
    return value


#: A callable given as object or import path; dumped to JSON as import path.
CallableRef = Annotated[
    Any,
    BeforeValidator(_to_callable),
    PlainSerializer(object_to_string, return_type=str, when_used="json"),
]


def _get_registry() -> ApiRegistry:
    """The global :data:`dasf_geo.config.api.registry`."""
    return _api.registry


class BaseConfig(BaseModel):
    """Configuration base class for functions, modules and classes.

    Attributes:
        doc: the object's documentation; taken from ``__doc__`` if empty.
        registry: the imports and code for generated stubs (the global
            :data:`dasf_geo.registry` by default).
        template: the template that renders the object in generated stubs.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    doc: str = Field(
        "",
        description=(
            "The documentation of the object. If empty, this will be taken "
            "from the corresponding ``__doc__`` attribute."
        ),
    )

    registry: ApiRegistry = Field(
        default_factory=_get_registry,
        description="Utilities for imports and encoders.",
    )

    template: Template = Field(
        Template(name="empty"),
        description=(
            "The :class:`dasf_geo.templates.Template` that is used to render "
            "this object for the generated API."
        ),
    )

    def render(self, **context: Any) -> str:
        """Render this object's code for the generated client module.

        Raises:
            ConfigurationError: the template is missing or broken.
        """
        context["config"] = self
        return self.template.render(**context)


def _to_transfer_options(value: Any) -> TransferOptions | None:
    """``transfer=``: options, a dict of them (sizes may have units) or None."""
    if value is None:
        return None
    try:
        return TransferOptions.of(value)
    except ConfigurationError as exc:
        raise ValueError(str(exc)) from None


class _CallableConfig(BaseConfig):
    """Options shared by functions and classes."""

    name: str = Field(
        "",
        description=(
            "The name of the function or class. If empty, this will be taken "
            "from its ``__name__`` attribute."
        ),
    )

    signature: inspect.Signature | None = Field(
        None,
        description=(
            "The calling signature. If empty, this will be taken from the "
            "function (or the class's ``__init__``) itself."
        ),
    )

    validators: dict[str, list[CallableRef]] = Field(
        default_factory=dict,
        description=(
            "Custom validators for arguments: a mapping from argument name to "
            "a list of callables (or their import paths) applied in order "
            "after the type validation. Each gets the value and returns the "
            "(possibly changed) value or raises ValueError."
        ),
    )

    serializers: dict[str, CallableRef] = Field(
        default_factory=dict,
        description=(
            "A mapping from argument name to a function that serializes its "
            "value to JSON (a pydantic PlainSerializer)."
        ),
    )

    field_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "custom Field overrides for the parameters, e.g. "
            "``{'repeat': {'ge': 0}}``. See :func:`pydantic.Field`."
        ),
    )

    annotations: dict[str, Any] = Field(
        default_factory=dict,
        description="custom annotations for parameters (override the signature)",
    )

    reporter_args: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Arguments that receive a progress reporter: a mapping from "
            "argument name to the reporter's default (a report object or a "
            "dict of its settings). These fields are marked with "
            "``is_reporter`` in the JSON schema; the transport attaches the "
            "request to the reporter before the call so that progress is "
            "sent back to the caller."
        ),
    )

    json_schema_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Any extra parameter for the JSON schema export.",
    )

    data_options: DataOptions | None = Field(
        None,
        description=(
            "Options of the data layer (CF and crs checks, encoding) for this "
            "object; merged over the module's ``data_options``."
        ),
    )

    transfer: Annotated[
        TransferOptions | None, BeforeValidator(_to_transfer_options)
    ] = Field(
        None,
        description=(
            "How requests and replies of this function (of every method, on a "
            "class; a method's own options win) travel: ``fragment_size`` of "
            "its replies, ``compression`` (zlib level of its Dataset and "
            "DataArray results, like ``data_options.compression``) and "
            "``max_size``, a hard limit in bytes (or a size such as '50MB') "
            "on its request and its reply. A caller's options apply too: the "
            "smaller fragment size and the smaller limit win. A "
            ":class:`~dasf_geo.TransferOptions` or a dict of them."
        ),
    )


class FunctionConfig(_CallableConfig):
    """Configuration of a backend function or method (see :func:`configure`).

    Raises:
        pydantic.ValidationError: on unknown options or wrong types (use
            :func:`dasf_geo.configure`, which turns this into a
            :class:`~dasf_geo.exceptions.ConfigurationError`).
    """

    return_validators: list[CallableRef] | None = Field(
        None,
        description=(
            "Validators for the return value: callables applied in order "
            "after the type validation."
        ),
    )

    return_serializer: CallableRef | None = Field(
        None,
        description="A function that is used to serialize the return value.",
    )

    returns: dict[str, Any] = Field(
        default_factory=dict,
        description="custom Field overrides for the return value, e.g. {'gt': 0}",
    )

    return_annotation: Any | None = Field(
        None, description="The annotation for the return value."
    )

    template: Template = Field(
        Template(name="function.py"),
        description=(
            "The :class:`dasf_geo.templates.Template` that is used to render "
            "the function for the generated API."
        ),
    )


class ClassConfig(_CallableConfig):
    """Configuration of a backend class (see :func:`configure`).

    Raises:
        pydantic.ValidationError: on unknown options or wrong types.
    """

    init_doc: str = Field(
        "",
        description=(
            "The documentation of the constructor. If empty, this will be taken "
            "from the class's ``__init__`` method."
        ),
    )

    methods: list[str] = Field(
        default_factory=list,
        description=("names of the methods to expose; all public methods if empty"),
    )

    template: Template = Field(
        Template(name="class_.py"),
        description=(
            "The :class:`dasf_geo.templates.Template` that is used to render "
            "the class for the generated API."
        ),
    )


def _pick_messaging_config(value: Any) -> Any:
    """A dict of options becomes the config of the layout they describe."""
    if isinstance(value, dict):
        return config_class_for(value)(**value)
    return value


def _default_messaging_config() -> PulsarConfig | WebsocketURLConfig:
    return config_class_for(environment_options())()


class ModuleConfig(BaseConfig):
    """Configuration of a backend module (what :func:`dasf_geo.main` builds).

    Attributes:
        messaging_config: how to reach the broker; a dict with
            ``websocket_url`` (or ``producer_url``/``consumer_url``) set
            becomes a :class:`WebsocketURLConfig`, any other dict a
            :class:`PulsarConfig` (see
            :func:`~dasf_geo.config.messaging.config_class_for`).
        log_config: the logging configuration.
        debug: send tracebacks with error replies.
        members: the functions and classes to expose (``__all__`` if empty).
        imports: extra import statements for generated client modules.
        data_options: module-wide options of the data layer.
        json_schema_extra: extra keys merged into the module's JSON schema.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    messaging_config: Annotated[
        PulsarConfig | WebsocketURLConfig, BeforeValidator(_pick_messaging_config)
    ] = Field(
        default_factory=_default_messaging_config,
        description="Configuration on how to connect to the message broker.",
    )

    log_config: LoggingConfig = Field(
        default_factory=LoggingConfig, description="Configuration for the logging."
    )

    debug: bool = Field(
        False,
        description=(
            "Run the backend module in debug mode (creates more verbose error "
            "messages)."
        ),
    )

    members: list[Any] = Field(
        default_factory=list, description="List of members for this module"
    )

    imports: str = Field(
        "",
        description="Imports that should be added to the generated API module.",
    )

    data_options: DataOptions | None = Field(
        None, description="Module-wide options of the data layer."
    )

    template: Template = Field(
        Template(name="module.py"),
        description=(
            "The :class:`dasf_geo.templates.Template` that is used to render "
            "the module for the generated API."
        ),
    )

    json_schema_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Any extra parameter for the JSON schema export of the module",
    )

    @field_validator("members", mode="before")
    @classmethod
    def _members_list(cls, value: Any) -> Any:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(
                "members must be a list of names, functions or classes, e.g. "
                "['hello_world']"
            )
        return list(value)


def messaging_config_from(
    defaults: dict[str, Any],
) -> PulsarConfig | WebsocketURLConfig:
    """A messaging config from embedded ``defaults``, overridden by the env.

    Generated client modules embed the backend's connection settings; a
    ``DE_BACKEND_*`` environment variable still wins over the embedded value
    (e.g. ``DE_BACKEND_TOPIC`` to talk to another deployment).

    Raises:
        pydantic.ValidationError: the resulting settings are invalid.
    """
    env = environment_options()
    kwargs = {key: value for key, value in defaults.items() if key not in env}
    # a URL in the environment switches the embedded layout; the embedded
    # options decide otherwise
    url_env = {key: env[key] for key in URL_OPTIONS if key in env}
    config_class = config_class_for(url_env, kwargs)
    # options of the other kind of config (host/port vs. URLs) do not apply
    kwargs = {k: v for k, v in kwargs.items() if k in config_class.model_fields}
    return config_class(**kwargs)
