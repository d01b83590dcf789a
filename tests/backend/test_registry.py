"""The API registry: register_type, register_import, hard_code."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import dasf_geo
from dasf_geo.config.api import registry
from dasf_geo.config.registry import ApiRegistry
from dasf_geo.exceptions import ConfigurationError


class Point(BaseModel):
    """A point."""

    x: float
    y: float


def helper(value: int) -> int:
    """A helper function."""
    return value + 1


def test_the_registry_is_one_object_whatever_the_import_path():
    import dasf_geo.config.registry as registry_module

    assert dasf_geo.registry is registry
    assert registry_module.register_type == registry.register_type
    assert registry_module.imports == registry.imports
    with pytest.raises(AttributeError):
        registry_module.no_such_name  # noqa: B018


def test_register_type_keeps_the_object_and_records_its_source():
    reg = ApiRegistry()
    assert reg.register_type(Point) is Point
    assert reg.register_type(helper) is helper
    assert reg.objects[0].startswith("class Point(BaseModel):")
    assert reg.objects[1].startswith("def helper(value: int) -> int:")
    reg.register_type(Point)
    assert len(reg.objects) == 2  # registering twice adds nothing


def test_register_type_as_decorator_drops_the_decorator(make_module):
    mod = make_module(
        """
        from pydantic import BaseModel
        from dasf_geo import registry

        @registry.register_type
        class Area(BaseModel):
            size: float
        """
    )
    assert mod.Area.__name__ == "Area"
    source = registry.objects[-1]
    assert source == "class Area(BaseModel):\n    size: float\n"


def test_register_type_records_the_imports_its_code_needs(make_module):
    reg = ApiRegistry()
    reg.register_type(Point)
    reg.register_type(helper)
    assert reg.object_imports == ["from pydantic import BaseModel"]
    make_module("VALUE = 1\n", name="registry_sibling")
    mod = make_module(
        """
        from __future__ import annotations

        import datetime
        import os.path
        import typing as t
        from collections import OrderedDict as OD, deque
        from pydantic import BaseModel, Field

        from registry_sibling import VALUE

        __all__ = ["Stamp", "Unrelated"]


        class Stamp(BaseModel):
            when: datetime.datetime
            tags: t.List[str] = Field(default_factory=list)
            parts: "OD[str, int]" = OD()

            def limit(self) -> int:
                return VALUE


        class Unrelated:
            queue = deque()
            path = os.path
        """,
    )
    reg.register_type(mod.Stamp)
    assert reg.object_imports == [
        "from pydantic import BaseModel",
        "import datetime",
        "import typing as t",
        "from collections import OrderedDict as OD",
        "from pydantic import Field",
        "from registry_sibling import VALUE",
    ]
    reg.register_type(mod.Stamp)
    assert len(reg.object_imports) == 6  # registering twice adds nothing
    copied = reg.copy_registry()
    assert copied.object_imports == reg.object_imports
    assert copied.object_imports is not reg.object_imports


def test_register_type_makes_relative_imports_absolute(tmp_path, monkeypatch):
    import importlib
    import sys

    pkg = tmp_path / "registry_relpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "units.py").write_text("UNIT = 'm'\n")
    (pkg / "models.py").write_text(
        "from pydantic import BaseModel\n"
        "from .units import UNIT\n\n\n"
        "class Length(BaseModel):\n"
        "    value: float\n"
        "    unit: str = UNIT\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        models = importlib.import_module("registry_relpkg.models")
        reg = ApiRegistry()
        reg.register_type(models.Length)
    finally:
        for name in (
            "registry_relpkg",
            "registry_relpkg.models",
            "registry_relpkg.units",
        ):
            sys.modules.pop(name, None)
    assert reg.object_imports == [
        "from pydantic import BaseModel",
        "from registry_relpkg.units import UNIT",
    ]


def test_register_type_errors():
    reg = ApiRegistry()
    with pytest.raises(ConfigurationError) as err:
        reg.register_type(42)
    assert str(err.value) == (
        "registry.register_type expects a class or a function, got int 42"
    )
    namespace: dict[str, object] = {}
    exec("class Hidden:\n    pass\n", namespace)
    with pytest.raises(ConfigurationError) as err:
        reg.register_type(namespace["Hidden"])
    assert str(err.value).startswith(
        "registry.register_type: cannot find the source code of 'Hidden'"
    )
    assert str(err.value).endswith(
        "define it in a module file, or pass its code to registry.hard_code()"
    )


def test_register_import():
    reg = ApiRegistry()
    reg.register_import("numpy", "np")
    reg.register_import("os.path")
    assert reg.imports == {"numpy": "np", "os.path": ""}


@pytest.mark.parametrize(
    ("module", "alias", "message"),
    [
        (
            "no_such_module_abc",
            None,
            "registry.register_import: cannot import 'no_such_module_abc' (No module "
            "named 'no_such_module_abc'); install it or fix the name",
        ),
        (
            "os; import shutil",
            None,
            "registry.register_import: 'os; import shutil' is not a valid module "
            "name; give a dotted name such as 'matplotlib.pyplot'",
        ),
        (
            "",
            None,
            "registry.register_import: '' is not a valid module name; give a dotted "
            "name such as 'matplotlib.pyplot'",
        ),
        (
            42,
            None,
            "registry.register_import: module must be a str such as 'numpy', got "
            "int 42",
        ),
        (
            "os",
            "x y",
            "registry.register_import: alias 'x y' for 'os' is not a Python "
            "identifier; give a name such as 'np'",
        ),
    ],
)
def test_register_import_errors(module, alias, message):
    reg = ApiRegistry()
    with pytest.raises(ConfigurationError) as err:
        reg.register_import(module, alias)
    assert str(err.value) == message
    assert reg.imports == {}


def test_imports_are_validated_on_assignment():
    reg = ApiRegistry()
    with pytest.raises(ValueError, match="Could not import all modules"):
        reg.imports = {"no_such_module_abc": ""}


def test_hard_code():
    reg = ApiRegistry()
    reg.hard_code("    UNIT = 'm'\n")
    assert reg.objects == ["UNIT = 'm'\n"]


def test_hard_code_errors():
    reg = ApiRegistry()
    with pytest.raises(ConfigurationError) as err:
        reg.hard_code("def broken(:\n")
    assert str(err.value) == (
        "registry.hard_code: the code is not valid Python: invalid syntax "
        "(line 1); fix the code before registering it"
    )
    with pytest.raises(ConfigurationError) as err:
        reg.hard_code(b"x = 1")  # type: ignore[arg-type]
    assert (
        str(err.value) == "registry.hard_code expects Python source as a str, got bytes"
    )
    with pytest.raises(ConfigurationError) as err:
        reg.hard_code("#" * 1_000_001)
    assert str(err.value) == (
        "registry.hard_code: the code has 1000001 characters, more than the limit "
        "of 1000000; import it with registry.register_import() instead"
    )
    assert reg.objects == []
