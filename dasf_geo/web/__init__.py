"""The dasf_geo dashboard and TypeScript client files, shipped with the package.

The dashboard is a static page (``static/index.html`` with one JavaScript
bundle and one stylesheet) built from the TypeScript sources in ``web/`` of
the repository by ``web/build.mjs`` (esbuild) and vendored here, so serving
it needs neither npm nor the internet. The gateway serves
:func:`static_dir` at ``/``.

``ts/dasf_client.ts`` is the DASF WebSocket client that generated
TypeScript stubs inline, and ``tools/json2ts.cjs`` the bundled
json-schema-to-typescript converter the stub generator runs with ``node``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["client_source", "converter_script", "static_dir"]

_HERE = Path(__file__).resolve().parent


def static_dir() -> Path:
    """The folder of the built dashboard (it holds ``index.html``)."""
    return _HERE / "static"


def client_source() -> str:
    """The TypeScript source of the DASF client that generated stubs inline.

    Raises:
        FileNotFoundError: the package was installed without its web files.
    """
    return (_HERE / "ts" / "dasf_client.ts").read_text(encoding="utf-8")


def converter_script() -> Path:
    """The bundled json-schema-to-typescript script (run with ``node``)."""
    return _HERE / "tools" / "json2ts.cjs"
