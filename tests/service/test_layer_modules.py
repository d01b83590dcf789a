"""The service layer's names under their old paths, and what serving costs."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("old", "new", "names"),
    [
        ("dasf_geo.transport.dynamic", "dasf_geo.service.dynamic",
         ["connect", "aconnect", "Service", "messaging_config", "encode_value"]),
        ("dasf_geo.transport.backend", "dasf_geo.service.handler",
         ["ModuleHandler", "BackgroundListener", "listen", "test_connect"]),
        ("dasf_geo.transport.handler", "dasf_geo.service.handler",
         ["ModuleHandler", "binary_reply"]),
        ("dasf_geo.transport.client", "dasf_geo.service.client",
         ["send_request", "binary_accept"]),
        ("dasf_geo.transport.http", "dasf_geo.service.dynamic", ["connect_http"]),
    ],
)  # fmt: skip
def test_old_import_paths_give_the_moved_names(old, new, names):
    code = (
        f"from {old} import {', '.join(names)}\n"
        f"import {new} as new\n"
        f"print(all(globals()[n] is getattr(new, n) for n in {names!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"


def test_an_unknown_name_of_an_old_path_is_an_attribute_error():
    import dasf_geo.transport.dynamic as old

    with pytest.raises(AttributeError) as info:
        old.no_such_name  # noqa: B018
    assert str(info.value) == (
        "module 'dasf_geo.transport.dynamic' has no attribute 'no_such_name'"
    )


def test_serving_or_calling_a_module_loads_neither_pandas_nor_sqlalchemy():
    code = (
        "import sys\n"
        "import dasf_geo\n"
        "from dasf_geo.service.handler import ModuleHandler\n"
        "from dasf_geo.service.client import send_request\n"
        "dasf_geo.connect\n"
        "print(sorted(m for m in ('pandas', 'sqlalchemy') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
