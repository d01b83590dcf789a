"""A Python function as a pydantic model (:class:`BackendFunction`).

:meth:`BackendFunction.create_model` turns a typed function into a model
with a ``func_name`` literal and one field per parameter. Validating a
request with that model checks the arguments; calling the validated model
runs the function and returns an instance of its ``return_model``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.json_schema import JsonSchemaValue

from dasf_geo.backend import introspection
from dasf_geo.backend.base import (
    SchemaExtra,
    build_model,
    check_schema,
    config_values,
)
from dasf_geo.config.backend import FunctionConfig
from dasf_geo.data import DataOptions, resolve_annotation
from dasf_geo.exceptions import ConfigurationError
from dasf_geo.protocol.options import TransferOptions

__all__ = [
    "BackendFunction",
    "BackendFunctionConfig",
    "FunctionAPIModel",
    "ReturnModel",
    "get_return_model",
]


class ReturnModel(RootModel[Any]):
    """Base class of return models: ``root`` holds the return value."""

    model_config = ConfigDict(arbitrary_types_allowed=True)


class BackendFunctionConfig(FunctionConfig):
    """The config of a created function model (adds the function itself)."""

    function: Any = Field(description="The function to call.")

    class_name: str = Field(description="Name of the model class")

    def update_from_function(self) -> None:
        """Fill ``name``, ``doc`` and ``signature`` from the function."""
        func = self.function
        if not self.name:
            self.name = func.__name__ or ""
        if not self.doc:
            self.doc = inspect.getdoc(func) or ""
        if not self.signature:
            self.signature = introspection.signature_of(func, f"function {self.name!r}")


class FunctionAPIModel(BaseModel):
    """A function in the API suitable for RPC via DASF."""

    name: str = Field(
        description="The name of the function that is used as identifier in the RPC."
    )

    rpc_schema: JsonSchemaValue = Field(description="The JSON Schema for the function.")

    return_schema: JsonSchemaValue = Field(
        description="The JSON Schema for the return value."
    )

    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "What the function sets beyond its schemas: 'transfer' (its "
            "fragment_size, compression and max_size in bytes) and 'data' (its "
            "data options: cf, crs, demap, format, compression...), each only "
            "with the values that are set. Callers may refuse early what the "
            "function would refuse; other DASF clients ignore this key."
        ),
    )


def get_return_model(
    docstring: Any,
    config: BackendFunctionConfig,
    data_options: DataOptions | None = None,
) -> type[ReturnModel]:
    """Create the return model (a root model named like the function model).

    The annotation is ``return_annotation`` of the config, else the
    signature's; a missing one becomes ``Any`` with a warning. The
    description comes from the docstring's Returns section, constraints
    from ``returns``.

    Raises:
        ConfigurationError: ``returns`` holds invalid Field arguments.
    """
    field_kws: dict[str, Any] = {"default": None}
    description = introspection.return_description(docstring)
    if description:
        field_kws["description"] = description
    field_kws.update(config.returns)

    sig = config.signature
    if config.return_annotation is not None:
        annotation = config.return_annotation
    elif sig is not None and sig.return_annotation is not sig.empty:
        annotation = Any if sig.return_annotation is None else sig.return_annotation
    else:
        introspection.warn_at(
            config.function,
            f"function {config.name!r} has no return annotation, so its result "
            "is sent as Any without validation; annotate the return type",
            stacklevel=4,
        )
        annotation = Any
    if config.return_validators or config.return_serializer is not None:
        annotation = introspection.with_validators(
            annotation, config.return_validators, config.return_serializer
        )
    else:
        annotation = resolve_annotation(annotation, data_options)
    try:
        field = Field(**field_kws)
    except TypeError as exc:
        raise ConfigurationError(
            f"function {config.name!r}: returns={config.returns!r} are not valid "
            f"Field arguments: {exc}"
        ) from exc
    create_kws: dict[str, Any] = {"root": (annotation, field), "__base__": ReturnModel}
    if "description" in field_kws:
        create_kws["__doc__"] = field_kws["description"]
    model = create_model(config.class_name, **create_kws)
    return cast("type[ReturnModel]", model)


#: the transfer options of a member without ``@configure(transfer=...)``
NO_TRANSFER_OPTIONS = TransferOptions()


class BackendFunction(SchemaExtra, BaseModel):
    """A base class for function models.

    Do not use this class directly; create subclasses with
    :meth:`create_model`.
    """

    model_config = ConfigDict(
        validate_assignment=True, arbitrary_types_allowed=True, extra="forbid"
    )

    backend_config: ClassVar[BackendFunctionConfig]

    return_model: ClassVar[type[ReturnModel]]
    #: the data options in force for this function (its own over its module's)
    effective_data_options: ClassVar[DataOptions | None] = None

    if TYPE_CHECKING:
        func_name: str

    def transfer_options(self) -> TransferOptions:
        """The function's own transfer options (``@configure(transfer=...)``)."""
        return self.backend_config.transfer or NO_TRANSFER_OPTIONS

    def __call__(self) -> ReturnModel:
        """Run the function with the validated arguments.

        Returns:
            an instance of :attr:`return_model` holding the result.

        Raises:
            Exception: whatever the function raises.
            pydantic.ValidationError: the result does not match the return
                annotation.
        """
        config = self.backend_config
        assert config.signature is not None
        args, kwargs = introspection.get_kws(config.signature, self)
        ret = config.function(*args, **kwargs)
        return self.return_model.model_validate(ret)

    @classmethod
    def create_model(
        cls,
        func: Callable[..., Any],
        config: FunctionConfig | None = None,
        class_name: str | None = None,
        data_options: DataOptions | None = None,
        **kwargs: Any,
    ) -> type[BackendFunction]:
        """Create a new pydantic model from a function.

        Args:
            func: a function or method (not a lambda, no ``*args``/``**kwargs``).
            config: the configuration; overrides the ``@configure`` config of
                ``func``.
            class_name: the name of the generated model; ``Func`` + the
                function's name in CamelCase by default.
            data_options: module-wide data options; the function's own
                ``data_options`` are merged over them.
            **kwargs: any other parameter for :func:`pydantic.create_model`.

        Returns:
            the new subclass of :class:`BackendFunction`.

        Raises:
            ConfigurationError: ``func`` cannot be exposed (a lambda, no name,
                ``*args``, a parameter name the model reserves, an annotation
                without validation or JSON schema).
        """
        if inspect.isclass(func) or not callable(func):
            raise ConfigurationError(
                f"BackendFunction.create_model expects a function, got "
                f"{type(func).__name__} {func!r:.60}; use BackendClass.create_model "
                "for classes"
            )
        introspection.check_callable(func, "function")
        name = cast(str, func.__name__)
        what = f"function {name!r}"
        sig = introspection.signature_of(func, what)
        introspection.check_parameters(sig, what)
        docstring = introspection.parse_docstring(func)

        if config is None:
            config = getattr(func, "__pulsar_config__", None) or FunctionConfig()
        if not isinstance(config, FunctionConfig):
            raise ConfigurationError(
                f"the config of {what} must be a FunctionConfig, got "
                f"{type(config).__name__}; decorate functions with @configure "
                "using function options"
            )
        if not class_name:
            class_name = introspection.snake_to_camel("Func", name)

        backend_config = BackendFunctionConfig(
            function=func,
            class_name=class_name,
            **config_values(config, type(config).model_fields),
        )
        backend_config.update_from_function()
        if backend_config.signature is not None:
            # a signature given with @configure(signature=...) wins
            sig = backend_config.signature
            introspection.check_parameters(sig, what)
        options = introspection.member_options(
            data_options, backend_config.data_options, backend_config.transfer, what
        )

        # the RPC identifier is the configured name (the function's by default)
        fields = introspection.get_fields(
            backend_config.name, sig, docstring, backend_config, what, options
        )
        kwargs.update(fields)
        desc = introspection.get_desc(docstring)
        created = build_model(
            class_name,
            cls,
            what,
            getattr(func, "__module__", None) or __name__,
            desc or "",
            **kwargs,
        )
        model = cast("type[BackendFunction]", created)
        model.return_model = get_return_model(docstring, backend_config, options)
        model.effective_data_options = options
        model.backend_config = backend_config
        check_schema(what, model, model.return_model)
        return model

    @classmethod
    def get_api_info(cls) -> FunctionAPIModel:
        """The API info of the function (name, request and return schema)."""
        return FunctionAPIModel(
            name=cls.backend_config.name,
            rpc_schema=cls.model_json_schema(),
            return_schema=cls.return_model.model_json_schema(),
            options=cls.published_options(),
        )

    @classmethod
    def published_options(cls) -> dict[str, Any]:
        """The transfer and data options the API info publishes (set ones only)."""
        out: dict[str, Any] = {}
        transfer = cls.backend_config.transfer
        if transfer is not None:
            values = {
                k: v for k, v in dataclasses.asdict(transfer).items() if v is not None
            }
            if values:
                out["transfer"] = values
        data = getattr(cls, "effective_data_options", None)
        if data is not None:
            values = data.model_dump(mode="json", exclude_none=True)
            if values:
                out["data"] = values
        return out
