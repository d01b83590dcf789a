"""Helpers for the dashboard tests: a page that records what a person would
not want to see (console errors, requests leaving 127.0.0.1) and reads
pixels off the screen."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

#: matplotlib's viridis at 9 evenly spaced points (the dashboard's palette)
VIRIDIS_POINTS = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
]


def viridis(value: float, lo: float, hi: float) -> tuple[int, int, int]:
    """The colour the dashboard gives ``value`` on the range [lo, hi]."""
    index = min(255, max(0, round((value - lo) / (hi - lo) * 255)))
    x = index / 255 * 8
    k = min(int(x), 7)
    f = x - k
    a, b = VIRIDIS_POINTS[k], VIRIDIS_POINTS[k + 1]
    return tuple(round(a[c] + (b[c] - a[c]) * f) for c in range(3))  # type: ignore[return-value]


@dataclass
class Watched:
    """A page and what happened on it."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def outside(self, port: int | None = None) -> list[str]:
        """Requests to anywhere but 127.0.0.1 (and ``port``, the page's origin);
        blob: and data: URLs are the page's own."""
        return [
            url
            for url in self.requests
            if urlparse(url).scheme not in ("blob", "data")
            and (
                urlparse(url).hostname != "127.0.0.1"
                or (port is not None and urlparse(url).port != port)
            )
        ]


def watch(page: Any) -> Watched:
    """Record console errors, page errors and every request of ``page``."""
    watched = Watched(page)
    page.on(
        "console",
        lambda m: (
            watched.errors.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning") and "WebGL" not in m.text
            else None
        ),
    )
    page.on("pageerror", lambda e: watched.errors.append(f"page error: {e}"))
    page.on("request", lambda r: watched.requests.append(r.url))
    page.on("websocket", lambda ws: watched.requests.append(ws.url))
    return watched


def screen_pixels(page: Any) -> Any:
    """The browser window as a Pillow RGB image."""
    from PIL import Image

    return Image.open(io.BytesIO(page.screenshot())).convert("RGB")


def wait_rendered(page: Any, after: int = 0) -> int:
    """Wait until the map has rendered more than ``after`` times; the count."""
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=map]')"
        f"?.dataset.rendered || 0) > {after}",
        timeout=20000,
    )
    return int(page.get_attribute("[data-testid=map]", "data-rendered"))


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 3) -> bool:
    """True if two colours differ by at most ``tolerance`` in every channel."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))
