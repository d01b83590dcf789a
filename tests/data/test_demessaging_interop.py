"""demessaging 0.6.4 reads our NetCDF wire form, and we read its.

Runs demessaging's own ``validate_dataset``/``validate_dataarray`` and
``encode_xarray`` in its cached virtual environment (see tests/interop/peers).
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest
import xarray as xr

from dasf_geo.serializers.xarray import encode_xarray
from dasf_geo.validators.xarray import validate_dataarray, validate_dataset
from tests.conftest import SAMPLE_DATA, timeout

pytestmark = pytest.mark.interop

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from demessaging.serializers.xarray import encode_xarray
    from demessaging.validators.xarray import validate_dataarray, validate_dataset

    sent = json.load(open(sys.argv[1]))
    ds = validate_dataset(None, sent["ds"])
    da = validate_dataarray(None, sent["da"])
    json.dump(
        {
            "vars": sorted(ds.data_vars),
            "crs": ds.attrs["crs"],
            "dims": dict(ds.sizes),
            "da_name": da.name,
            "ds": encode_xarray(ds),
            "da": encode_xarray(da),
        },
        open(sys.argv[2], "w"),
    )
    """
)


def test_demessaging_reads_ours_and_we_read_its(tmp_path):
    from tests.interop import peers

    python = peers.peer_python("demessaging")
    grid = xr.open_dataset(SAMPLE_DATA / "gridded_temperature.nc").load()
    sent = {"ds": encode_xarray(grid), "da": encode_xarray(grid["tas"])}
    (tmp_path / "in.json").write_text(json.dumps(sent))
    (tmp_path / "peer.py").write_text(SCRIPT)
    proc = subprocess.run(
        [str(python), str(tmp_path / "peer.py"), "in.json", "out.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout(60),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    back = json.loads((tmp_path / "out.json").read_text())
    assert back["vars"] == ["tas"]
    assert back["crs"] == "EPSG:4326"
    assert back["dims"] == {"time": 12, "lat": 18, "lon": 36}
    assert back["da_name"] == "tas"
    # demessaging read our bytes and wrote its own: nothing was lost
    xr.testing.assert_identical(validate_dataset(None, back["ds"]), grid)
    xr.testing.assert_identical(validate_dataarray(None, back["da"]), grid["tas"])
