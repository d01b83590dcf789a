"""The helpers of the backend models, by their demessaging-style path.

The code lives in two modules: :mod:`dasf_geo.backend.introspection`
(signatures and docstrings into model fields, used by the function and
class models) and :mod:`dasf_geo.backend.stubgen` (client stub generation,
used by the module model). This module re-exports the names code written
against ``dasf_geo.backend.utils`` imports.
"""

from __future__ import annotations

from dasf_geo.backend.introspection import (  # noqa: F401  (re-exported)
    RESERVED_NAMES,
    camelize,
    check_callable,
    check_parameters,
    get_desc,
    get_fields,
    get_kws,
    is_progress_report,
    member_options,
    merge_options,
    parse_docstring,
    return_description,
    signature_of,
    snake_to_camel,
    warn_at,
    with_validators,
)
from dasf_geo.backend.stubgen import (  # noqa: F401  (re-exported)
    CodeWriter,
    builtin_names,
    docstring_literal,
    drop_duplicate_imports,
    drop_unused_imports,
    get_module_imports,
    tidy_blank_lines,
)

__all__ = [
    "check_callable",
    "get_desc",
    "get_fields",
    "get_kws",
    "get_module_imports",
    "merge_options",
    "parse_docstring",
    "snake_to_camel",
]
