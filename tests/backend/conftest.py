"""Fixtures of the backend tests: seed listings as importable modules."""

from __future__ import annotations

import importlib
import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from dasf_geo.config.api import registry

_counter = itertools.count()


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Each test starts from, and leaves, the global registry as it was."""
    imports, objects = dict(registry.imports), list(registry.objects)
    object_imports = list(registry.object_imports)
    yield
    registry.imports = imports
    registry.objects = objects
    registry.object_imports = object_imports


@pytest.fixture
def make_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], ModuleType]:
    """Write ``source`` to a uniquely named module in tmp_path and import it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created: list[str] = []

    def make(source: str, name: str | None = None) -> ModuleType:
        name = name or f"backend_mod_{next(_counter)}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), "utf-8")
        importlib.invalidate_caches()
        created.append(name)
        return importlib.import_module(name)

    yield make  # type: ignore[misc]
    for name in created:
        sys.modules.pop(name, None)


# --- the seed's listings, with dasf_geo imports --------------------------------

HELLO_WORLD = """
from dasf_geo import main

__all__ = ["hello_world"]


def hello_world() -> str:
    return 'HelloWorld'


if __name__ == "__main__":
    main(
        messaging_config=dict(topic="hello-world-topic")
    )
"""

HELLO_CLASS = """
from typing import List
from dasf_geo import main

__all__ = ["HelloWorld"]


class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    def repeat_message(self, repeat: int) -> List[str]:
        return [self.message] * repeat


if __name__ == "__main__":
    main(
        messaging_config=dict(topic="hello-world-class-topic")
    )
"""

HELLO_CONFIGURED = """
from typing import List
from dasf_geo import main, configure

__all__ = ["HelloWorld"]


@configure(methods=["repeat_message"])
class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> List[str]:
        return [self.message] * repeat

    def unexposed_method(self) -> str:
        return self.message


if __name__ == "__main__":
    main(
        messaging_config=dict(topic="hello-world-class-topic")
    )
"""

HELLO_GREET = """
from typing import List
import datetime
from pydantic import BaseModel
from dasf_geo import main, configure, registry

__all__ = ["HelloWorld"]


@registry.register_type
class GreetResponse(BaseModel):
    message: str
    greetings: List[str]
    greeting_time: datetime.datetime


@configure(methods=["repeat_message", "greet"])
class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> List[str]:
        return [self.message] * repeat

    @configure(field_params={"repeat": {"ge": 0}})
    def greet(self, repeat: int, greet_message: str) -> GreetResponse:
        greetings: List[str] = [greet_message] * repeat
        return GreetResponse(
            message=self.message,
            greetings=greetings,
            greeting_time=datetime.datetime.now(),
        )

    def unexposed_method(self) -> str:
        return self.message


if __name__ == "__main__":
    main(
        messaging_config=dict(topic="hello-world-topic")
    )
"""

HELLO_NAME = """
from dasf_geo import main

__all__ = ["hello_world"]


def hello_world(name: str) -> str:
    return 'Hello World, ' + name
"""
