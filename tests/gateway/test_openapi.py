"""``/openapi.json`` validates as OpenAPI 3.1; ``/docs`` needs nothing online."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.gateway.conftest import GEO_TOPIC

pytestmark = pytest.mark.timeout(180)


async def test_document_validates(gw: httpx.AsyncClient) -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    response = await gw.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    validate(doc, cls=OpenAPIV31SpecValidator)
    assert doc["openapi"] == "3.1.0"
    op = doc["paths"][f"/services/{GEO_TOPIC}/monthly_anomaly"]["post"]
    assert op["summary"] == "Subtract the time mean of ``variable`` from each month."
    body = op["requestBody"]["content"]
    args = body["application/json"]["schema"]
    assert args["required"] == ["ds"]
    assert args["properties"]["variable"]["default"] == "tas"
    assert args["properties"]["ds"]["x-dasf-type"] == "xarray.Dataset"
    assert "func_name" not in args["properties"]
    assert body["application/x-netcdf"]["x-dasf-argument"] == "ds"
    assert "multipart/form-data" in body
    ok = op["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "application/x-netcdf"}
    stations = doc["paths"][f"/services/{GEO_TOPIC}/stations"]["post"]
    assert set(stations["responses"]["200"]["content"]) == {
        "application/json",
        "text/csv",
    }
    assert "application/x-netcdf" not in stations["requestBody"]["content"]
    assert stations["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ValidationError"
    }


def test_defs_become_components() -> None:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    from dasf_geo.gateway.openapi import build_document

    info = {
        "classes": [
            {
                "name": "Grid",
                "rpc_schema": {
                    "type": "object",
                    "description": "A grid.",
                    "properties": {
                        "class_name": {"const": "Grid", "type": "string"},
                        "size": {"type": "integer"},
                        "function": {},
                    },
                    "required": ["class_name", "size", "function"],
                },
                "methods": [
                    {
                        "name": "cell",
                        "rpc_schema": {
                            "type": "object",
                            "description": "One cell.",
                            "properties": {
                                "func_name": {"const": "cell", "type": "string"},
                                "at": {"$ref": "#/$defs/Point"},
                            },
                            "required": ["func_name", "at"],
                            "$defs": {
                                "Point": {
                                    "type": "object",
                                    "properties": {"x": {"type": "number"}},
                                }
                            },
                        },
                        "return_schema": {"type": "number"},
                    }
                ],
            }
        ],
        "functions": [],
        "rpc_schema": {"description": "grids"},
    }
    doc = build_document([("grids", info)])
    validate(doc, cls=OpenAPIV31SpecValidator)
    op = doc["paths"]["/services/grids/Grid/cell"]["post"]
    args = op["requestBody"]["content"]["application/json"]["schema"]
    assert args["properties"]["at"] == {
        "$ref": "#/components/schemas/grids.Grid.cell.Point"
    }
    assert args["required"] == ["size", "at"]
    assert "grids.Grid.cell.Point" in doc["components"]["schemas"]


async def test_docs_are_offline(gw: httpx.AsyncClient) -> None:
    page = await gw.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r'(?:src|href|url)[=:]\s*"([^"]+)"', page.text)
    assert urls, page.text
    for url in urls:
        assert not re.match(r"^[a-z]+://", url), url  # nothing absolute
        assert not url.startswith("//"), url
    assert "validatorUrl: null" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        response = await gw.get(f"/docs/static/{asset}")
        assert response.status_code == 200, asset
        assert len(response.content) > 1000
    bundle = (await gw.get("/docs/static/swagger-ui-bundle.js")).text
    # Swagger UI 5 renders OpenAPI 3.1
    assert re.search(r'version:"5\.\d+\.\d+"|swagger-ui.{0,40}5\.\d+', bundle) or (
        "OpenAPI 3.1" in bundle or "openapi31" in bundle.lower()
    )
