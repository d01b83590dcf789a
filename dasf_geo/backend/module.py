"""A Python module as a pydantic root model (:class:`BackendModule`).

:meth:`BackendModule.create_model` collects the module's members (``__all__``,
or ``members``), turns functions into :class:`BackendFunction` models and
classes into :class:`BackendClass` models, and builds a root model over
their union. A request (``{"func_name": ...}`` or ``{"class_name": ...}``)
validates into exactly one member; calling the validated model runs it.
"""

from __future__ import annotations

import inspect
import io
import sys
import types
from importlib import import_module
from typing import Any, ClassVar, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
)
from pydantic.json_schema import JsonSchemaValue

from dasf_geo.backend import introspection, stubgen
from dasf_geo.backend.base import SchemaExtra, build_model, config_values
from dasf_geo.backend.class_ import BackendClass, ClassAPIModel, tagged_union
from dasf_geo.backend.function import (
    BackendFunction,
    FunctionAPIModel,
    ReturnModel,
)
from dasf_geo.config.backend import ModuleConfig
from dasf_geo.exceptions import (
    MODULE_STYLE,
    ConfigurationError,
    format_validation_error,
)
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE

__all__ = ["BackendModule", "BackendModuleConfig", "ModuleAPIModel"]

#: Largest request ``process_request`` reads from a file or string (bytes);
#: the messaging configs' ``max_request_size`` default.
MAX_REQUEST_BYTES = MAX_REQUEST_SIZE


class BackendModuleConfig(ModuleConfig):
    """The config of a created module model (adds the member models)."""

    models: list[Any] = Field(
        default_factory=list,
        description="the function and class models of the module's members",
    )

    module: Any = Field(
        None, description="The imported backend module (None if there is none)"
    )

    class_name: str = Field(description="Name of the model class")


class ModuleAPIModel(BaseModel):
    """A model that represents the API of a backend module."""

    classes: list[ClassAPIModel] = Field(
        description="The RPC-enabled classes that this module contains."
    )

    functions: list[FunctionAPIModel] = Field(
        description="The RPC-enabled functions that this module contains."
    )

    rpc_schema: JsonSchemaValue = Field(
        description="The aggregated JSON schema for an RPC call to this module."
    )


def _config_message(exc: ValidationError) -> str:
    """One line per problem of a ModuleConfig, naming the option."""
    return format_validation_error(
        exc,
        "module configuration",
        known_fields=ModuleConfig.model_fields,
        style=MODULE_STYLE,
    )


def _default_members(module: types.ModuleType) -> list[Any]:
    names = getattr(module, "__all__", None)
    if names is not None:
        if isinstance(names, str) or not all(isinstance(n, str) for n in names):
            raise ConfigurationError(
                f"__all__ of module {module.__name__!r} must be a list of names"
            )
        return list(names)
    return [
        obj
        for key, obj in vars(module).items()
        if not key.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]


class BackendModule(SchemaExtra, RootModel[Any]):
    """A base class for backend modules.

    Do not use this class directly; create subclasses with
    :meth:`create_model` (or :func:`dasf_geo.main`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend_config: ClassVar[BackendModuleConfig]

    root: Union[BackendFunction, BackendClass]

    def __call__(self) -> ReturnModel:
        """Run the selected member; returns its return model instance.

        Raises:
            Exception: whatever the member's code raises.
        """
        return self.root()  # type: ignore[no-any-return]

    # --- creation -------------------------------------------------------------

    @classmethod
    def create_model(
        cls,
        module_name: str | None = None,
        members: list[Any] | None = None,
        config: ModuleConfig | None = None,
        class_name: str | None = None,
        **config_kws: Any,
    ) -> type[BackendModule]:
        """Generate the model of a backend module.

        Args:
            module_name: the module to import (its ``__all__`` lists the
                members unless ``members`` or ``config.members`` is given).
            members: the members: :class:`BackendFunction` or
                :class:`BackendClass` models, functions, classes, or names of
                objects in ``module_name``.
            config: the module configuration; otherwise ``config_kws``, else
                a ``backend_config`` variable of the module, else the
                defaults (read from ``DE_BACKEND_*``).
            class_name: the name of the generated model; the module name or
                the topic by default.
            **config_kws: the configuration as keyword arguments of
                :class:`~dasf_geo.config.ModuleConfig`.

        Returns:
            the new subclass of :class:`BackendModule`.

        Raises:
            ConfigurationError: neither ``module_name`` nor ``members`` is
                given, both ``config`` and ``config_kws`` are, the module
                cannot be imported, a member is missing or cannot be exposed,
                or two members share a name.
        """
        module: types.ModuleType | None = None
        if module_name is not None:
            if not isinstance(module_name, str):
                raise ConfigurationError(
                    f"module_name must be a str, got {type(module_name).__name__}"
                )
            try:
                # with the members given, the module is only looked up: a
                # module loaded from a file (importlib's spec_from_file_location)
                # is not importable by its name, and need not be
                module = (
                    sys.modules.get(module_name)
                    if members is not None
                    else import_module(module_name)
                )
            except ImportError as exc:
                raise ConfigurationError(
                    f"cannot import the backend module {module_name!r}: {exc}"
                ) from exc
        if members is None and module is None:
            raise ConfigurationError(
                "BackendModule.create_model needs a module_name or a list of "
                "members, e.g. create_model(members=[hello_world], "
                "messaging_config={'topic': 'hello'})"
            )
        if config is not None and config_kws:
            raise ConfigurationError(
                "give either config or configuration keywords "
                f"({', '.join(config_kws)}), not both"
            )
        if config_kws:
            try:
                config = ModuleConfig(**config_kws)
            except ValidationError as exc:
                raise ConfigurationError(_config_message(exc)) from exc
        elif config is None and module is not None:
            config = getattr(module, "backend_config", None)
        if config is None:
            config = ModuleConfig()
        if not isinstance(config, ModuleConfig):
            raise ConfigurationError(
                f"config must be a ModuleConfig, got {type(config).__name__}"
            )

        topic = config.messaging_config.topic
        class_name = class_name or module_name or topic
        values = config_values(
            config,
            ModuleConfig.model_fields,
            shared=("registry", "messaging_config", "log_config"),
        )
        backend_config = BackendModuleConfig(
            module=module, class_name=class_name, **values
        )

        member_list = list(members or backend_config.members or [])
        if not member_list and module is not None:
            member_list = _default_members(module)
        if not member_list:
            raise ConfigurationError(
                f"found no members for the backend module {module_name or topic!r}; "
                "list them in __all__ or pass members=[...]"
            )

        models: list[type[BackendFunction] | type[BackendClass]] = []
        objects: list[Any] = []
        options = backend_config.data_options
        for member in member_list:
            if isinstance(member, str):
                if module is None:
                    raise ConfigurationError(
                        f"member {member!r} is a name, but no module_name was "
                        "given to look it up in; pass the object itself"
                    )
                if not hasattr(module, member):
                    raise ConfigurationError(
                        f"module {module.__name__!r} has no member {member!r}; "
                        "fix __all__ or the members list"
                    )
                member = getattr(module, member)
            model: type[BackendFunction] | type[BackendClass]
            if inspect.isclass(member) and issubclass(member, BackendClass):
                model = member
                obj: Any = member.backend_config.Class
            elif inspect.isclass(member) and issubclass(member, BackendFunction):
                model = member
                obj = member.backend_config.function
            elif inspect.isclass(member):
                model = BackendClass.create_model(member, data_options=options)
                obj = member
            elif callable(member):
                model = BackendFunction.create_model(member, data_options=options)
                obj = member
            else:
                raise ConfigurationError(
                    f"cannot expose {member!r:.80}: members must be functions, "
                    "classes, their names, or BackendFunction/BackendClass models"
                )
            objects.append(obj)
            models.append(model)

        by_name: dict[str, type[BaseModel]] = {}
        for model in models:
            name = model.backend_config.name
            if name in by_name:
                raise ConfigurationError(
                    f"two members of the backend module are named {name!r}; "
                    "each function and class needs a unique name"
                )
            by_name[name] = model

        backend_config.members = objects
        backend_config.models = models
        if not backend_config.doc and module is not None:
            backend_config.doc = introspection.get_desc(
                introspection.parse_docstring(module)
            )
        if module is not None:
            imports = stubgen.get_module_imports(module)
            if imports:
                backend_config.imports = "\n".join(
                    filter(None, [backend_config.imports, imports])
                )

        root_type = tagged_union(
            by_name,
            "Unknown function or class: the request needs 'func_name' or "
            "'class_name' set to one of {expected}",
        )
        created = build_model(
            class_name,
            cls,
            f"module {class_name!r}",
            module_name or __name__,
            backend_config.doc,
            root=(root_type, Field(description="The member to call.")),
        )
        new = cast("type[BackendModule]", created)
        new.model_config["title"] = topic
        new.model_rebuild(force=True)
        new.backend_config = backend_config
        return new

    # --- API info -------------------------------------------------------------

    @classmethod
    def get_api_info(cls) -> ModuleAPIModel:
        """The API info of the module: its classes, functions and schema."""
        models = cls.backend_config.models
        return ModuleAPIModel(
            classes=[m.get_api_info() for m in models if issubclass(m, BackendClass)],
            functions=[
                m.get_api_info() for m in models if issubclass(m, BackendFunction)
            ],
            rpc_schema=cls.model_json_schema(),
        )

    # --- running requests -----------------------------------------------------

    @classmethod
    def _validate_request(cls, request: Any) -> BackendModule:
        if isinstance(request, cls):
            return request
        if isinstance(request, BackendModule):
            return cls.model_validate(request.root.model_dump())
        if isinstance(request, (str, bytes, bytearray)):
            if len(request) > MAX_REQUEST_BYTES:
                raise ConfigurationError(
                    f"the request has {len(request)} bytes, more than the limit of "
                    f"{MAX_REQUEST_BYTES}"
                )
            return cls.model_validate_json(request)
        if isinstance(request, io.IOBase) or hasattr(request, "read"):
            data = request.read(MAX_REQUEST_BYTES + 1)
            if len(data) > MAX_REQUEST_BYTES:
                raise ConfigurationError(
                    f"the request file is larger than the limit of "
                    f"{MAX_REQUEST_BYTES} bytes"
                )
            return cls.model_validate_json(data)
        if isinstance(request, BaseModel):
            return cls.model_validate(request.model_dump())
        return cls.model_validate(request)

    @classmethod
    def process_request(cls, request: Any) -> ReturnModel:
        """Validate and run ``request`` in this process (no broker).

        Args:
            request: a dict, a JSON string or bytes, a readable (binary or
                text) file with JSON, or an instance of this model.

        Returns:
            the return model instance; ``.root`` is the result and
            ``.model_dump_json()`` the reply a caller would get.

        Raises:
            pydantic.ValidationError: the request is invalid (its
                ``.errors()`` name the argument and the problem).
            ConfigurationError: the request is larger than 1 GiB.
            Exception: whatever the member's code raises.
        """
        model = cls._validate_request(request)
        return model()

    @classmethod
    def send_request(cls, request: Any, **kwargs: Any) -> Any:
        """Send ``request`` to the running backend through the broker.

        Args:
            request: a dict, a file with JSON, or an instance of this model.
            **kwargs: passed to :func:`dasf_geo.service.client.send_request`
                (e.g. ``timeout``).

        Returns:
            the return model instance.

        Raises:
            pydantic.ValidationError: the request is invalid locally.
            RemoteError, TransportError: see the transport.
        """
        from dasf_geo.service import client

        if isinstance(request, (str, bytes, bytearray)):
            request = cls._validate_request(request)
        return client.send_request(cls, request, **kwargs)

    def compute(self) -> Any:
        """Send this request to the backend and return the return model."""
        return type(self).send_request(self)

    @classmethod
    def listen(cls) -> Any:
        """Connect to the broker and answer requests until stopped.

        Raises:
            ConnectionFailed: the broker cannot be reached.
        """
        from dasf_geo.service import handler

        return handler.listen(cls)

    @classmethod
    def test_connect(cls) -> Any:
        """Connect to the broker once and disconnect.

        Raises:
            ConnectionFailed: the broker cannot be reached.
        """
        from dasf_geo.service import handler

        return handler.test_connect(cls)

    @classmethod
    def shell(cls) -> None:
        """Start an interactive shell with the model available as ``Model``."""
        namespace = {"Model": cls}
        try:
            from IPython import start_ipython  # type: ignore[import-not-found]
        except ImportError:
            import code

            code.interact(
                banner="dasf_geo shell: the backend module's model is `Model`",
                local=namespace,
            )
        else:  # pragma: no cover - IPython is optional
            start_ipython(argv=[], user_ns=namespace)

    # --- client stubs ---------------------------------------------------------

    @classmethod
    def render(cls) -> str:
        """The client module's code before formatting (see :meth:`generate`).

        Raises:
            ConfigurationError: a type or default cannot be written into the
                client (e.g. a backend type that is not registered).
        """
        return stubgen.render_module(cls)

    @classmethod
    def generate(
        cls,
        line_length: int = 79,
        use_formatters: bool = True,
        use_autoflake: bool = True,
        use_black: bool = True,
        use_isort: bool = True,
    ) -> str:
        """Generate the code of a client module for this backend module.

        The client has the same functions and classes (signatures,
        docstrings, registered types, imports); calling them sends the
        request through the broker with :meth:`send_request`. Unused imports
        are always dropped; black, isort and autoflake format the code when
        they are installed and enabled.

        Args:
            line_length: the line length for black.
            use_formatters: use any formatter at all.
            use_autoflake: use autoflake (if installed).
            use_black: use black (if installed).
            use_isort: use isort (if installed).

        Returns:
            the Python source of the client module.

        Raises:
            ConfigurationError: ``line_length`` is not a positive int, or a
                type or default cannot be written into the client.
        """
        if (
            isinstance(line_length, bool)
            or not isinstance(line_length, int)
            or not 10 <= line_length <= 10_000
        ):
            raise ConfigurationError(
                f"line_length must be an int between 10 and 10000, got "
                f"{line_length!r:.40}"
            )
        return stubgen.format_code(
            cls.render(),
            line_length,
            use_formatters,
            use_autoflake,
            use_black,
            use_isort,
        )
