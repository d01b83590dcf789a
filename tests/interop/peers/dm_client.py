"""Call a backend through demessaging's generated client; print JSON lines.

Runs in the reference venv. Usage::

    python dm_client.py calls '{"stub": PATH, "header": {...}, "calls": [...]}'
    python dm_client.py bench '{"stub": PATH, "header": {...}, "call": {...},
                                "n": 100, "warmup": 5, "start_at": EPOCH}'

A call is ``{"function": NAME, "args": {...}}`` or ``{"class": NAME,
"init": {...}, "method": NAME, "args": {...}}``. Arguments named in
``"datasets"`` are built locally with ``make_dataset``-style parameters
(``{"nx":…, "ny":…, "nt":…}``) so a Dataset can be sent.

``calls`` prints one line per call: ``{"ok": true, "result": …, "seconds":
…}`` or ``{"ok": false, "error_type": …, "error": …}``; ``bench`` prints
``{"latencies": [...], "begin": …, "end": …}`` (seconds per call, warm-up
excluded; wall-clock ``time.time()`` around the timed loop, which starts at
``start_at`` if given so that parallel callers overlap).
"""

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def describe(value: Any) -> Any:
    """A JSON-able description of a result (Datasets summarised exactly)."""
    try:
        import numpy
        import xarray
    except ImportError:  # pragma: no cover - the venv has both
        xarray = numpy = None
    if xarray is not None and isinstance(value, xarray.Dataset):
        out: dict[str, Any] = {
            "dims": {str(k): int(v) for k, v in value.sizes.items()},
            "attrs": {str(k): _plain(v) for k, v in value.attrs.items()},
            "data_vars": {},
            "coords": {},
        }
        for group, items in (("data_vars", value.data_vars), ("coords", value.coords)):
            for name, var in items.items():
                arr = numpy.asarray(var.values)
                entry = {
                    "dims": list(var.dims),
                    "dtype": str(arr.dtype),
                    "attrs": {str(k): _plain(v) for k, v in var.attrs.items()},
                }
                if arr.dtype.kind in "fiu":
                    entry["sum"] = float(arr.astype("float64").sum())
                if arr.size <= 64:
                    entry["values"] = _plain(arr.tolist())
                out[group][str(name)] = entry
        return {"__dataset__": out}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return _plain(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def load_stub(spec: dict[str, Any]) -> Any:
    stub = Path(spec["stub"])
    sys.path.insert(0, str(stub.parent))
    module = importlib.import_module(stub.stem)
    if spec.get("header"):
        # The generated stub leaves the header out on purpose (it holds
        # tokens); set it on the config the module model actually uses.
        module.BackendModule.backend_config.messaging_config.header = spec["header"]
    return module


def dataset(nx: int, ny: int, nt: int) -> Any:
    import numpy
    import xarray

    data = numpy.arange(nt * ny * nx, dtype="float32").reshape(nt, ny, nx)
    return xarray.Dataset(
        {"t2m": (("time", "lat", "lon"), data, {"units": "K"})},
        coords={
            "lat": ("lat", numpy.linspace(-80, 80, ny), {"units": "degrees_north"}),
            "lon": ("lon", numpy.linspace(-170, 170, nx), {"units": "degrees_east"}),
        },
        attrs={"Conventions": "CF-1.8", "crs": "EPSG:4326"},
    )


def make_call(module: Any, call: dict[str, Any]) -> Any:
    args = dict(call.get("args", {}))
    for name, params in call.get("datasets", {}).items():
        args[name] = dataset(**params)
    if "class" in call:
        obj = getattr(module, call["class"])(**call.get("init", {}))
        return getattr(obj, call["method"])(**args)
    return getattr(module, call["function"])(**args)


def run_calls(spec: dict[str, Any]) -> None:
    module = load_stub(spec)
    for call in spec["calls"]:
        start = time.perf_counter()
        try:
            result = make_call(module, call)
        except Exception as exc:
            line = {
                "ok": False,
                "error_type": type(exc).__name__,
                "error": str(exc)[:4000],
            }
        else:
            line = {
                "ok": True,
                "result": describe(result),
                "seconds": time.perf_counter() - start,
            }
        print(json.dumps(line), flush=True)


def run_bench(spec: dict[str, Any]) -> None:
    module = load_stub(spec)
    call = spec["call"]
    for _ in range(int(spec.get("warmup", 0))):
        make_call(module, call)
    start_at = float(spec.get("start_at", 0))
    if start_at > time.time():
        time.sleep(start_at - time.time())  # line up with the other callers
    latencies = []
    begin = time.time()
    for _ in range(int(spec["n"])):
        start = time.perf_counter()
        make_call(module, call)
        latencies.append(time.perf_counter() - start)
    end = time.time()
    print(json.dumps({"latencies": latencies, "begin": begin, "end": end}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("calls", "bench"):
        sys.exit("usage: dm_client.py {calls|bench} SPEC_JSON")
    command, spec = sys.argv[1], json.loads(sys.argv[2])
    run_calls(spec) if command == "calls" else run_bench(spec)
    # The generated client keeps daemon websocket threads; leave promptly.
    sys.stdout.flush()
