"""Dashboard benchmark: from clicking "call" to the map drawn, in headless Chromium.

Starts ``dasf-geo serve benchmarks/web_grid_service.py`` (embedded broker and
gateway), opens the dashboard in headless Chromium (the system package,
through Playwright), calls ``grid`` through its form and measures, inside
the page (``performance.now()``):

- reply: from the click to the whole NetCDF reply received;
- draw: from the reply's arrival to the map's first complete render
  (decoding the header, scanning the value range, colouring the first step);
- the page's JS heap after drawing (Chrome's ``JSHeapUsedSize``; the
  NetCDF bytes live in an ArrayBuffer outside that heap), and the peak
  resident size of the renderer process (``VmHWM``, whole tab).

    python benchmarks/bench_web.py [--repeat 3] [--sizes 10,100]

Sizes are MB of float32 data: 10 MB is 10 x 500 x 500, 100 MB is
25 x 1,000 x 1,000. Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dasf_geo.testing.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHAPES = {10: (10, 500, 500), 100: (25, 1000, 1000)}


def _static_server() -> str:
    """The dashboard from a plain HTTP server (the page then talks to the broker)."""
    import functools
    import http.server
    import threading

    from dasf_geo.web import static_dir

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(static_dir()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def _serve() -> tuple[subprocess.Popen[bytes], str, object]:
    port, http = free_port(), free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dasf_geo.cli.tool",
            "serve",
            str(ROOT / "benchmarks" / "web_grid_service.py"),
            "--port",
            str(port),
            "--http-port",
            str(http),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log.seek(0)
        if b"HTTP gateway on" in log.read():
            return proc, f"http://127.0.0.1:{http}|{port}", log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    log.seek(0)
    proc.kill()
    raise SystemExit("dasf-geo serve did not start:\n" + log.read().decode()[-2000:])


def _renderer_peak_mb() -> float:
    """The largest peak resident size (VmHWM) of Chromium's renderer processes."""
    peak = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"--type=renderer" not in cmdline:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1000)
        except OSError:
            continue
    return peak


def _one(browser: object, url: str, shape: tuple[int, int, int]) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 1100})  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}#web_grid_service/grid")
        page.wait_for_selector("input[name=times]", timeout=30000)
        for name, value in zip(("times", "ny", "nx"), shape, strict=True):
            page.fill(f"input[name={name}]", str(value))
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.evaluate("() => { window.clicked = performance.now(); }")
        page.click("[data-testid=call]")
        page.wait_for_function(
            "() => document.querySelector('[data-testid=map]')?.dataset.renderedAt",
            timeout=600000,
        )
        t = page.evaluate("""() => ({clicked: window.clicked,
                       arrived: dasfGeoDashboard.timings.arrived,
                       drawn: Number(document.querySelector('[data-testid=map]')
                              .dataset.renderedAt)})""")
        metrics = {
            m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
        }
        if errors:
            raise SystemExit(f"page errors: {errors}")
        return {
            "reply": (t["arrived"] - t["clicked"]) / 1000,
            "draw": (t["drawn"] - t["arrived"]) / 1000,
            "total": (t["drawn"] - t["clicked"]) / 1000,
            "heap": metrics["JSHeapUsedSize"] / 1e6,
            "heap_total": metrics["JSHeapTotalSize"] / 1e6,
            "renderer": _renderer_peak_mb(),
        }
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="10,100")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="serve the page from a plain HTTP server and let it talk to the "
        "broker directly instead of through the gateway's /ws/ pass-through",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    proc, where, _log = _serve()
    gateway, broker_port = where.split("|")
    url = (
        f"{_static_server()}/?broker=ws://127.0.0.1:{broker_port}"
        "&topic=web_grid_service"
        if args.direct
        else f"{gateway}/"
    )
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                for size in [int(s) for s in args.sizes.split(",") if s]:
                    shape = SHAPES[size]
                    runs = [_one(browser, url, shape) for _ in range(args.repeat)]
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                    rows.append((size, shape, med))
                    print(f"{size} MB done: {med}", file=sys.stderr)
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(30)
    load = os.getloadavg()[0]
    route = (
        "page -> broker directly" if args.direct else "page -> gateway /ws/ -> broker"
    )
    print(
        f"\nmedians of {args.repeat} runs, {route}; "
        f"load average {load:.1f} at the end\n"
    )
    print(
        "| result | click to reply | reply to map drawn | click to map "
        "| JS heap used / total | renderer peak RSS |"
    )
    print("|---|---|---|---|---|---|")
    for size, shape, m in rows:
        print(
            f"| {size} MB ({' x '.join(map(str, shape))} float32) | {m['reply']:.2f} s "
            f"| {m['draw']:.2f} s | {m['total']:.2f} s "
            f"| {m['heap']:.0f} / {m['heap_total']:.0f} MB | {m['renderer']:.0f} MB |"
        )


if __name__ == "__main__":
    main()
