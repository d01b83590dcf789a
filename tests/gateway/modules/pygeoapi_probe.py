"""Run pygeoapi's hello-world process in-process; print its OGC API JSON.

Runs in the cached pygeoapi venv: ``python pygeoapi_probe.py WORKDIR``.
Writes a minimal pygeoapi configuration with the ``hello-world`` process and
a TinyDB job manager into WORKDIR, generates its OpenAPI document, then
asks pygeoapi's Flask app (its test client: no socket) for the landing
page, the conformance classes, the process list and description, an
asynchronous execution, the job's status and results, and two unknown
ids; prints them as one JSON object (status, headers, body of each).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CONFIG = """\
server:
  bind: {host: 127.0.0.1, port: 5000}
  url: http://127.0.0.1:5000
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  language: en-US
  limits: {default_items: 10, max_items: 50}
  map: {url: "http://127.0.0.1/{z}/{x}/{y}.png", attribution: none}
  manager:
    name: TinyDB
    connection: WORKDIR/jobs.db
    output_dir: WORKDIR/
logging: {level: CRITICAL}
metadata:
  identification: {title: probe, description: probe, keywords: [probe],
    keywords_type: theme, terms_of_service: none, url: "http://127.0.0.1"}
  license: {name: CC-BY 4.0, url: "https://creativecommons.org/licenses/by/4.0/"}
  provider: {name: probe, url: "http://127.0.0.1"}
  contact: {name: probe, position: probe, address: probe, city: probe,
    stateorprovince: probe, postalcode: 1, country: probe, phone: 1, fax: 1,
    email: probe@example.org, url: "http://127.0.0.1", hours: none,
    instructions: none, role: pointOfContact}
resources:
  hello-world:
    type: process
    processor: {name: HelloWorld}
"""


def main() -> None:
    work = Path(sys.argv[1]).resolve()
    config = work / "config.yml"
    openapi = work / "openapi.yml"
    config.write_text(CONFIG.replace("WORKDIR", str(work)), encoding="utf-8")
    os.environ["PYGEOAPI_CONFIG"] = str(config)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi)
    tool = Path(sys.executable).with_name("pygeoapi")
    subprocess.run(
        [str(tool), "openapi", "generate", str(config), "--output-file", str(openapi)],
        check=True,
        capture_output=True,
    )
    from pygeoapi.flask_app import APP

    client = APP.test_client()

    def answer(response: object) -> dict[str, object]:
        return {
            "status": response.status_code,  # type: ignore[attr-defined]
            "headers": dict(response.headers),  # type: ignore[attr-defined]
            "json": response.get_json(silent=True),  # type: ignore[attr-defined]
        }

    def get(path: str) -> dict[str, object]:
        return answer(client.get(path, headers={"Accept": "application/json"}))

    out = {
        "landing": get("/?f=json"),
        "conformance": get("/conformance?f=json"),
        "processes": get("/processes?f=json"),
        "process": get("/processes/hello-world?f=json"),
    }
    created = client.post(
        "/processes/hello-world/execution",
        json={"inputs": {"name": "Peter"}},
        headers={"Prefer": "respond-async"},
    )
    out["execute_async"] = answer(created)
    job = str(created.headers.get("Location", "")).rsplit("/", 1)[-1]
    status = get(f"/jobs/{job}?f=json")
    for _ in range(300):
        body = status["json"]
        if isinstance(body, dict) and body.get("status") in ("successful", "failed"):
            break
        time.sleep(0.1)
        status = get(f"/jobs/{job}?f=json")
    out["job"] = status
    out["results"] = get(f"/jobs/{job}/results?f=json")
    out["missing_process"] = get("/processes/nope?f=json")
    out["missing_job"] = get("/jobs/nope?f=json")
    sys.stdout.write("\n" + json.dumps(out, default=str) + "\n")


if __name__ == "__main__":
    main()
