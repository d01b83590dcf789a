"""A Python class as a pydantic model (:class:`BackendClass`).

:meth:`BackendClass.create_model` turns a class into a model with a
``class_name`` literal, one field per constructor parameter and a
``function`` field: the union of the models of its exposed methods,
discriminated by their ``func_name``. Calling a validated model creates the
instance and calls the method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
)
from pydantic.json_schema import JsonSchemaValue

from dasf_geo.backend import introspection
from dasf_geo.backend.base import SchemaExtra, build_model, check_schema, config_values
from dasf_geo.backend.function import (
    BackendFunction,
    FunctionAPIModel,
    ReturnModel,
)
from dasf_geo.config.backend import ClassConfig
from dasf_geo.data import DataOptions
from dasf_geo.exceptions import ConfigurationError
from dasf_geo.protocol.options import TransferOptions

__all__ = ["BackendClass", "BackendClassConfig", "ClassAPIModel", "tagged_union"]


def _public_methods(Class: type) -> list[str]:
    """Names of the public instance methods of ``Class``."""
    return [
        name
        for name, _ in inspect.getmembers(Class, predicate=inspect.isfunction)
        if not name.startswith("_")
        and not isinstance(
            inspect.getattr_static(Class, name), (staticmethod, classmethod)
        )
    ]


class BackendClassConfig(ClassConfig):
    """The config of a created class model (adds the class and method models)."""

    models: dict[str, Any] = Field(
        default_factory=dict,
        description="Mapping of method name to the function model of the method",
    )

    Class: Any = Field(description="The class that corresponds to this config.")

    class_name: str = Field(description="Name of the model class")

    @property
    def method_configs(self) -> list[Any]:
        """The configs of the method models, in order."""
        return [model.backend_config for model in self.models.values()]

    def update_from_cls(self) -> None:
        """Fill ``name``, ``doc``, ``init_doc`` and ``signature`` from the class."""
        cls = self.Class
        if not self.name:
            self.name = cls.__name__ or ""
        if not self.doc:
            self.doc = inspect.getdoc(cls) or ""
        if not self.init_doc:
            # not inspect.getdoc: it would inherit object.__init__'s text
            init = cls.__dict__.get("__init__")
            doc = getattr(init, "__doc__", None)
            self.init_doc = inspect.cleandoc(doc) if isinstance(doc, str) else ""
        if not self.signature:
            if cls.__init__ is object.__init__:
                # no constructor of its own: object's (*args, **kwargs) would
                # be rejected, but the class takes no arguments
                self_param = inspect.Parameter(
                    "self", inspect.Parameter.POSITIONAL_OR_KEYWORD
                )
                self.signature = inspect.Signature([self_param])
            else:
                self.signature = introspection.signature_of(
                    cls.__init__, f"class {self.name!r}"
                )


class ClassAPIModel(BaseModel):
    """A class in the API suitable for RPC via DASF."""

    name: str = Field(
        description="The name of the class that is used as identifier in the RPC."
    )

    rpc_schema: JsonSchemaValue = Field(
        description="The JSON Schema for the constructor of the class."
    )

    methods: list[FunctionAPIModel] = Field(
        description="The list of methods that this class provides."
    )


def _member_tag(value: Any) -> str | None:
    """The name a request (dict or model) selects: class_name, else func_name."""
    if isinstance(value, dict):
        name = value.get("class_name", value.get("func_name"))
    else:
        name = getattr(value, "class_name", getattr(value, "func_name", None))
    return name if isinstance(name, str) else None


def tagged_union(models: dict[str, type[BaseModel]], message: str) -> Any:
    """A union of ``models`` (name -> model) selected by name.

    With a single model the model itself is returned. Otherwise a request
    naming no model, or an unknown one, gives one ``unknown_member`` error
    with ``message`` (``{expected}`` is replaced by the valid names) instead
    of one error per model.
    """
    if len(models) == 1:
        return next(iter(models.values()))
    names = ", ".join(repr(n) for n in models)
    members = tuple(Annotated[model, Tag(name)] for name, model in models.items())
    return Annotated[
        Union[members],  # type: ignore[valid-type]
        Discriminator(
            _member_tag,
            custom_error_type="unknown_member",
            custom_error_message=message,
            custom_error_context={"expected": names},
        ),
    ]


class BackendClass(SchemaExtra, BaseModel):
    """A base class for class models.

    Do not use this class directly; create subclasses with
    :meth:`create_model`.
    """

    model_config = ConfigDict(
        validate_assignment=True, arbitrary_types_allowed=True, extra="forbid"
    )

    backend_config: ClassVar[BackendClassConfig]

    if TYPE_CHECKING:
        class_name: str
        function: BackendFunction

    @property
    def return_model(self) -> type[ReturnModel]:
        """The return model of the selected method."""
        return self.function.return_model

    def transfer_options(self) -> TransferOptions:
        """The selected method's transfer options over the class's own."""
        own = self.backend_config.transfer
        method = self.function.transfer_options()
        return method if own is None else own.merge(method)

    def __call__(self) -> ReturnModel:
        """Create the instance and call the selected method.

        Returns:
            an instance of the method's return model.

        Raises:
            Exception: whatever the constructor or the method raises.
        """
        config = self.backend_config
        assert config.signature is not None
        args, kwargs = introspection.get_kws(config.signature, self)
        instance = config.Class(*args, **kwargs)
        function = self.function
        fconfig = function.backend_config
        assert fconfig.signature is not None
        fargs, fkwargs = introspection.get_kws(fconfig.signature, function)
        method = getattr(instance, fconfig.function.__name__)
        ret = method(*fargs, **fkwargs)
        return function.return_model.model_validate(ret)

    @classmethod
    def _constructor_fields(
        cls,
        Class: type,
        config: BackendClassConfig,
        data_options: DataOptions | None,
    ) -> dict[str, Any]:
        name = config.name or Class.__name__
        what = f"class {name!r}"
        sig = config.signature
        assert sig is not None
        introspection.check_parameters(sig, what)
        docstring = introspection.parse_docstring(Class)
        init = Class.__dict__.get("__init__")
        if init is not None:
            init_doc = introspection.parse_docstring(init)
            docstring.meta.extend(init_doc.meta)
        fields = introspection.get_fields(
            name, sig, docstring, config, what, data_options
        )
        func_name = fields.pop("func_name")
        # after the constructor's fields, as in demessaging's requests
        fields["class_name"] = (
            func_name[0],
            Field(description=f"The name of the class. Must be {name!r}"),
        )
        return fields

    @classmethod
    def create_model(
        cls,
        Class: type,
        config: ClassConfig | None = None,
        methods: list[type[BackendFunction] | Callable[..., Any] | str] | None = None,
        class_name: str | None = None,
        data_options: DataOptions | None = None,
        **kwargs: Any,
    ) -> type[BackendClass]:
        """Generate a pydantic model from a class.

        Args:
            Class: the class.
            config: the configuration; overrides the ``@configure`` config of
                ``Class``.
            methods: the methods to expose, as names, functions or
                :class:`BackendFunction` models; overrides ``config.methods``.
                By default all public methods.
            class_name: the name of the generated model; ``Class`` + the
                class's name by default.
            data_options: module-wide data options; the class's and the
                methods' own are merged over them.
            **kwargs: any other parameter for :func:`pydantic.create_model`.

        Returns:
            the new subclass of :class:`BackendClass`.

        Raises:
            ConfigurationError: ``Class`` is not a class, has no methods to
                expose, a listed method does not exist, or a constructor or
                method cannot be exposed.
        """
        if not inspect.isclass(Class):
            raise ConfigurationError(
                f"BackendClass.create_model expects a class, got "
                f"{type(Class).__name__} {Class!r:.60}; use "
                "BackendFunction.create_model for functions"
            )
        name = Class.__name__
        what = f"class {name!r}"
        if config is None:
            config = vars(Class).get("__pulsar_config__") or ClassConfig()
        if not isinstance(config, ClassConfig):
            raise ConfigurationError(
                f"the config of {what} must be a ClassConfig, got "
                f"{type(config).__name__}"
            )
        if not class_name:
            class_name = introspection.snake_to_camel("Class", name)
        values = config_values(config, ClassConfig.model_fields)
        backend_config = BackendClassConfig(
            Class=Class, class_name=class_name, **values
        )
        backend_config.update_from_cls()
        options = introspection.member_options(
            data_options, backend_config.data_options, backend_config.transfer, what
        )

        fields = cls._constructor_fields(Class, backend_config, options)

        if not methods:
            methods = list(backend_config.methods)
        if not methods:
            methods = list[Any](_public_methods(Class))
        if not methods:
            raise ConfigurationError(
                f"{what} has no public methods to expose; add one, or list "
                "methods with @configure(methods=[...])"
            )

        models: dict[str, type[BackendFunction]] = {}
        for method in methods:
            if inspect.isclass(method) and issubclass(method, BackendFunction):
                method_name = method.backend_config.name
                func_model: type[BackendFunction] = method
            else:
                if isinstance(method, str):
                    method_name = method
                    func = getattr(Class, method_name, None)
                    if func is None or not callable(func):
                        public = _public_methods(Class)
                        raise ConfigurationError(
                            f"{what} has no method {method_name!r} to expose; "
                            f"its public methods are: {', '.join(public) or '(none)'}"
                        )
                elif callable(method):
                    func = method
                    method_name = cast(str, getattr(method, "__name__", ""))
                else:
                    raise ConfigurationError(
                        f"methods of {what} must be names, functions or "
                        f"BackendFunction models, got {type(method).__name__}"
                    )
                static = inspect.getattr_static(Class, method_name, None)
                if isinstance(static, (staticmethod, classmethod)):
                    raise ConfigurationError(
                        f"{what}: {method_name!r} is a {type(static).__name__}; "
                        "only instance methods can be exposed as methods (the "
                        "request creates an instance first); expose it as a "
                        "module-level function instead"
                    )
                func_model = BackendFunction.create_model(
                    func,
                    class_name=introspection.snake_to_camel(
                        "Meth", class_name, method_name
                    ),
                    data_options=options,
                )
            models.setdefault(method_name, func_model)

        backend_config.models = models
        backend_config.methods = list(models)

        fields["function"] = (
            tagged_union(
                dict(models),
                f"Unknown method: 'func_name' must be one of {{expected}} "
                f"(the exposed methods of {name!r})",
            ),
            Field(description="The method to call."),
        )
        kwargs.update(fields)
        desc = introspection.get_desc(introspection.parse_docstring(Class))
        created = build_model(
            class_name,
            cls,
            what,
            getattr(Class, "__module__", None) or __name__,
            desc or "",
            **kwargs,
        )
        model = cast("type[BackendClass]", created)
        model.backend_config = backend_config
        check_schema(what, model)
        return model

    @classmethod
    def _get_constructor_model(cls) -> type[BaseModel]:
        """A model of the constructor alone (for the API info)."""
        config = cls.backend_config
        fields = {
            key: (info.annotation, info)
            for key, info in cls.model_fields.items()
            if key != "function"
        }
        return create_model(  # type: ignore[call-overload,no-any-return]
            config.class_name,
            __module__=cls.__module__,
            __doc__=cls.__doc__ or "",
            __config__=ConfigDict(arbitrary_types_allowed=True, extra="forbid"),
            **fields,  # type: ignore[arg-type]
        )

    @classmethod
    def get_api_info(cls) -> ClassAPIModel:
        """The API info of the class (constructor schema and methods)."""
        constructor = cls._get_constructor_model()
        return ClassAPIModel(
            name=cls.backend_config.name,
            rpc_schema=constructor.model_json_schema(),
            methods=[m.get_api_info() for m in cls.backend_config.models.values()],
        )
