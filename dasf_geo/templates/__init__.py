"""Jinja2 templates that render generated client stubs.

``module.py.jinja2`` renders a whole client module, ``function.py.jinja2``
one function stub and ``class_.py.jinja2`` one class stub. A
:class:`Template` names one of them (or a template of your own in another
folder) and renders it with a context.
"""

from __future__ import annotations

import pathlib
from functools import lru_cache
from typing import Any

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from dasf_geo.exceptions import ConfigurationError

__all__ = ["TEMPLATE_FOLDER", "Template"]

#: The folder holding the templates shipped with dasf_geo.
TEMPLATE_FOLDER = pathlib.Path(__file__).parent


@lru_cache(maxsize=16)
def _environment(folder: str) -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(folder, followlinks=True)
    # generated code is Python, not HTML: no autoescaping; keep_trailing_newline
    # so that templates compose line by line
    return jinja2.Environment(
        loader=loader,
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


class Template(BaseModel):
    """A jinja2 template used to render part of a generated client module.

    Attributes:
        name: the template's file name without ``suffix``, e.g. ``"module.py"``.
        folder: the folder that holds it.
        suffix: the file name suffix.
        context: extra variables passed to the template.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="File name of the template without suffix.")
    folder: pathlib.Path = Field(
        TEMPLATE_FOLDER, description="The folder that holds the template."
    )
    suffix: str = Field(".jinja2", description="The file name suffix.")
    context: dict[str, Any] = Field(
        default_factory=dict, description="Extra variables for the template."
    )

    @property
    def path(self) -> pathlib.Path:
        """The template's file."""
        return self.folder / (self.name + self.suffix)

    def render(self, **context: Any) -> str:
        """Render the template with ``context`` (and :attr:`context`).

        Raises:
            ConfigurationError: the template file does not exist or uses a
                variable that is not defined.
        """
        if self.name == "empty":
            return ""
        env = _environment(str(self.folder))
        try:
            template = env.get_template(self.name + self.suffix)
        except jinja2.TemplateNotFound as exc:
            raise ConfigurationError(
                f"template {self.name + self.suffix!r} not found in {self.folder}; "
                "check the template's name and folder"
            ) from exc
        variables = {**context, **self.context, "set": set}
        try:
            return template.render(**variables)
        except jinja2.UndefinedError as exc:
            raise ConfigurationError(
                f"template {self.path} uses an undefined variable: {exc}"
            ) from exc
