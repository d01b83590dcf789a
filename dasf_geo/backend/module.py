"""A Python module as a pydantic root model (:class:`BackendModule`).

:meth:`BackendModule.create_model` collects the module's members (``__all__``,
or ``members``), turns functions into :class:`BackendFunction` models and
classes into :class:`BackendClass` models, and builds a root model over
their union. A request (``{"func_name": ...}`` or ``{"class_name": ...}``)
validates into exactly one member; calling the validated model runs it.
"""

from __future__ import annotations

import copy
import inspect
import io
import json
import re
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
    create_model,
)
from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import SchemaError

from dasf_geo.backend import utils
from dasf_geo.backend.class_ import BackendClass, ClassAPIModel, tagged_union
from dasf_geo.backend.function import (
    BackendFunction,
    FunctionAPIModel,
    ReturnModel,
    schema_error,
)
from dasf_geo.config.api import merge_config
from dasf_geo.config.backend import ModuleConfig
from dasf_geo.config.registry import defined_names, registered_source
from dasf_geo.exceptions import (
    MODULE_STYLE,
    ConfigurationError,
    format_validation_error,
)
from dasf_geo.protocol.limits import MAX_REQUEST_SIZE
from dasf_geo.templates import Template

__all__ = ["BackendModule", "BackendModuleConfig", "ModuleAPIModel"]

#: Largest request ``process_request`` reads from a file or string (bytes);
#: the messaging configs' ``max_request_size`` default.
MAX_REQUEST_BYTES = MAX_REQUEST_SIZE

#: Option keys of the messaging config never written into generated clients.
_SECRET_KEYS = re.compile(r"header|token|password|secret|auth", re.I)


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


class BackendModule(RootModel[Any]):
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
        values = {
            key: (
                getattr(config, key)
                if key in ("registry", "messaging_config", "log_config")
                else copy.copy(getattr(config, key))
            )
            for key in ModuleConfig.model_fields
        }
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
            backend_config.doc = utils.get_desc(utils.parse_docstring(module))
        if module is not None:
            imports = utils.get_module_imports(module)
            if imports:
                backend_config.imports = "\n".join(
                    filter(None, [backend_config.imports, imports])
                )

        root_type = tagged_union(
            by_name,
            "Unknown function or class: the request needs 'func_name' or "
            "'class_name' set to one of {expected}",
        )
        kws: dict[str, Any] = {"__module__": module_name} if module_name else {}
        try:
            created = create_model(
                class_name,
                __base__=cls,
                __doc__=backend_config.doc,
                root=(root_type, Field(description="The member to call.")),
                **kws,
            )
        except (PydanticSchemaGenerationError, PydanticUserError, SchemaError) as exc:
            raise schema_error(f"module {class_name!r}", exc) from exc
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

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON schema, with the config's ``json_schema_extra`` merged in."""
        ret = super().model_json_schema(*args, **kwargs)
        config = getattr(cls, "backend_config", None)
        if config is not None and config.json_schema_extra:
            ret = merge_config(ret, copy.deepcopy(config.json_schema_extra))
        return ret

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
            **kwargs: passed to :func:`dasf_geo.transport.client.send_request`
                (e.g. ``timeout``).

        Returns:
            the return model instance.

        Raises:
            pydantic.ValidationError: the request is invalid locally.
            RemoteError, TransportError: see the transport.
        """
        from dasf_geo.transport import client

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
        from dasf_geo.transport import backend

        return backend.listen(cls)

    @classmethod
    def test_connect(cls) -> Any:
        """Connect to the broker once and disconnect.

        Raises:
            ConnectionFailed: the broker cannot be reached.
        """
        from dasf_geo.transport import backend

        return backend.test_connect(cls)

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
    def _messaging_defaults(cls) -> dict[str, Any]:
        config = cls.backend_config.messaging_config
        data = json.loads(config.model_dump_json(exclude_defaults=True))
        data["topic"] = config.topic
        return {k: v for k, v in data.items() if not _SECRET_KEYS.search(k)}

    @classmethod
    def render(cls) -> str:
        """The client module's code before formatting (see :meth:`generate`).

        Raises:
            ConfigurationError: a type or default cannot be written into the
                client (e.g. a backend type that is not registered).
        """
        config = cls.backend_config
        registry = config.registry
        objects = _registered_objects(registry.objects, config)
        local_names: set[str] = set()
        for source in objects:
            local_names |= defined_names(source)
        local_modules = {
            getattr(obj, "__module__", "") for obj in config.members if obj is not None
        }
        if config.module is not None:
            local_modules.add(config.module.__name__)
        writer = utils.CodeWriter(local_modules, local_names)
        rendered = [
            _render_member(model, writer, config.module) for model in config.models
        ]
        imports = sorted(writer.imports - {"builtins"})
        # the imports of the registered types (from the modules that define
        # them, which need not be this one), then those of the backend module
        module_imports = list(
            dict.fromkeys(
                [
                    *registry.object_imports,
                    *(
                        line
                        for line in config.imports.splitlines()
                        if line.strip() and "dasf_geo" not in line
                    ),
                ]
            )
        )
        messaging = json.dumps(cls._messaging_defaults(), indent=4, sort_keys=True)
        data_options = None
        if config.data_options is not None:
            data_options = _value_source(config.data_options, writer)
        template: Template = config.template
        return template.render(
            config=config,
            doc=utils.docstring_literal(config.doc, 0),
            imports=imports,
            module_imports=module_imports,
            registry_imports=sorted(registry.imports.items()),
            objects=objects,
            names=[m.backend_config.name for m in config.models],
            members=rendered,
            messaging=messaging,
            data_options=data_options,
        )

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
        code = cls.render()
        code = utils.drop_duplicate_imports(code)
        code = utils.drop_unused_imports(code)
        if use_formatters:
            code = _format(code, line_length, use_autoflake, use_black, use_isort)
        return utils.tidy_blank_lines(code)


def _format(
    code: str, line_length: int, use_autoflake: bool, use_black: bool, use_isort: bool
) -> str:
    if use_isort:
        try:
            import isort
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = isort.code(
                code, float_to_top=True, profile="black", line_length=line_length
            )
    if use_autoflake:
        try:
            import autoflake  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = autoflake.fix_code(code, remove_all_unused_imports=True)
    if use_black:
        try:
            import black
        except ImportError:  # pragma: no cover - optional
            pass
        else:
            code = black.format_str(code, mode=black.Mode(line_length=line_length))
    return code


def _registered_objects(sources: list[str], config: Any) -> list[str]:
    """The registered code to inline into the client of ``config``'s module.

    The registry is global, so it may hold several types of the same name,
    registered by different modules. Only one of them is inlined: the one
    that is this backend module's own (or a member's module's), else the one
    registered last (the one that the name would be bound to anyway).
    """
    by_name: dict[str, list[int]] = {}
    for index, source in enumerate(sources):
        names = defined_names(source)
        if len(names) == 1:
            by_name.setdefault(names.pop(), []).append(index)
    modules = [config.module] if config.module is not None else []
    modules += [inspect.getmodule(obj) for obj in config.members]
    drop: set[int] = set()
    for name, indexes in by_name.items():
        if len(indexes) < 2:
            continue
        keep = indexes[-1]
        for module in filter(None, modules):
            obj = vars(module).get(name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            try:
                own = registered_source(obj)
            except (OSError, TypeError):
                continue
            matches = [i for i in indexes if sources[i] == own]
            if matches:
                keep = matches[-1]
                break
        drop.update(i for i in indexes if i != keep)
    return [source for i, source in enumerate(sources) if i not in drop]


def _configure_args(config: Any, writer: utils.CodeWriter, keys: list[str]) -> str:
    """``key=value`` source for the options a stub repeats in ``@configure``."""
    parts = []
    for key in keys:
        value = getattr(config, key, None)
        if not value:
            continue
        parts.append(f"{key}={_value_source(value, writer)}")
    return ", ".join(parts)


def _value_source(value: Any, writer: utils.CodeWriter) -> str:
    if isinstance(value, dict):
        inner = ", ".join(
            f"{_value_source(k, writer)}: {_value_source(v, writer)}"
            for k, v in value.items()
        )
        return "{" + inner + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_value_source(v, writer) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner},)"
    if isinstance(value, BaseModel):
        return _value_source(value.model_dump(mode="json", exclude_unset=True), writer)
    if callable(value) and not isinstance(value, type):
        return writer._public_path(value)
    if inspect.isclass(value):
        return writer.annotation(value)
    return writer.default(value)


_FUNCTION_KEYS = [
    "field_params",
    "validators",
    "serializers",
    "return_validators",
    "return_serializer",
    "returns",
    "data_options",
]
_CLASS_KEYS = ["field_params", "validators", "serializers", "data_options"]


def _client_signature(config: Any) -> inspect.Signature:
    """``config.signature`` without the progress reporters (the backend fills
    those in; a caller never passes one)."""
    sig = config.signature
    reporters = getattr(config, "reporter_args", None) or {}
    return sig.replace(
        parameters=[p for p in sig.parameters.values() if p.name not in reporters]
    )


def _render_member(model: Any, writer: utils.CodeWriter, module: Any) -> str:
    config = model.backend_config
    if issubclass(model, BackendClass):
        methods = []
        for method_model in config.models.values():
            mconfig = method_model.backend_config
            msig = _client_signature(mconfig)
            methods.append(
                {
                    "name": mconfig.name,
                    "signature": writer.signature(
                        msig,
                        mconfig.annotations,
                        mconfig.return_annotation,
                    ),
                    "doc": utils.docstring_literal(mconfig.doc, 8),
                    "params": [p for p in msig.parameters if p != "self"],
                    "configure": _configure_args(mconfig, writer, _FUNCTION_KEYS),
                }
            )
        init_sig = config.signature
        context = {
            "name": config.name,
            "doc": utils.docstring_literal(config.doc, 4),
            "init_doc": utils.docstring_literal(config.init_doc, 8),
            "signature": writer.signature(init_sig, config.annotations),
            "params": [p for p in init_sig.parameters if p != "self"],
            "configure": _configure_args(config, writer, _CLASS_KEYS),
            "methods": methods,
        }
    else:
        sig = _client_signature(config)
        context = {
            "name": config.name,
            "doc": utils.docstring_literal(config.doc, 4),
            "signature": writer.signature(
                sig, config.annotations, config.return_annotation
            ),
            "params": list(sig.parameters),
            "configure": _configure_args(config, writer, _FUNCTION_KEYS),
        }
    return cast(str, config.render(**context))
