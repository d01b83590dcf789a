"""demessaging reads our api_info although it carries keys of ours (``options``)."""

from __future__ import annotations

import json
import subprocess

import pytest

from dasf_geo import BackendModule, TransferOptions, configure
from tests.conftest import timeout

pytestmark = pytest.mark.interop

_READ = """
import json, sys
from demessaging.backend.module import ModuleAPIModel
api = ModuleAPIModel.model_validate(json.load(open(sys.argv[1])))
print(json.dumps([[f.name, sorted(f.model_dump())] for f in api.functions]))
"""


@configure(transfer=TransferOptions(max_size=1_000_000), data_options={"crs": "off"})
def limited(n: int) -> int:
    """A function with options."""
    return n


def test_demessaging_parses_api_info_with_options(dm_python, tmp_path):
    module = BackendModule.create_model(
        members=[limited], messaging_config={"topic": "t"}
    )
    info = module.get_api_info().model_dump_json()
    assert json.loads(info)["functions"][0]["options"] == {
        "transfer": {"max_size": 1_000_000},
        "data": {"crs": "off"},
    }
    path = tmp_path / "api_info.json"
    path.write_text(info)
    result = subprocess.run(
        [str(dm_python), "-c", _READ, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["limited", ["name", "return_schema", "rpc_schema"]]
    ]
