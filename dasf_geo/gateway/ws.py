"""``/ws/{path}``: the broker's WebSocket routes on the gateway's origin.

A page served by the gateway (the dashboard) speaks DASF to the broker
through this route: ``/ws/v2/consumer/non-persistent/public/default/t/s``
on the gateway is the same path on the broker, with the query string. Text
and binary frames go both ways unchanged; a close on either side is passed
on with its code and reason. The caller's ``Authorization`` header (or the
``token`` query parameter, which travels in the query string) reaches the
broker's handshake; without one, the gateway's own ``--header`` is used. A
refused handshake is answered with the broker's HTTP status and reason
when the server supports denial responses, else the socket is closed with
code 1008 and that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

__all__ = ["MAX_FRAME", "routes"]

logger = logging.getLogger(__name__)

#: The largest message passed on in either direction (the embedded
#: broker's own frame limit is 8 MiB).
MAX_FRAME = 64 * 1024 * 1024


def _upstream_url(websocket: WebSocket, root: str, path: str) -> str:
    query = websocket.scope.get("query_string", b"").decode("latin-1")
    return f"{root}/ws/{path}" + (f"?{query}" if query else "")


async def _refuse(websocket: WebSocket, status: int, reason: str) -> None:
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(
            JSONResponse({"detail": reason}, status_code=status)
        )
        return
    await websocket.accept()
    await websocket.close(code=1008, reason=reason[:120])


async def passthrough(websocket: WebSocket) -> None:
    """Proxy one WebSocket to the broker until either side closes."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    gw = websocket.app.state.gateway
    path = websocket.path_params["path"]
    if ".." in path.split("/") or "\\" in path:
        await _refuse(websocket, 404, f"invalid broker path {path[:100]!r}")
        return
    settings = gw.settings
    url = _upstream_url(websocket, settings.broker_ws_root, path)
    header = dict(settings.header)
    auth = websocket.headers.get("authorization")
    if auth is not None and settings.forward_auth:
        header = {k: v for k, v in header.items() if k.lower() != "authorization"}
        header["Authorization"] = auth
    try:
        upstream = await connect(
            url,
            additional_headers=header,
            max_size=MAX_FRAME,
            open_timeout=10,
            ping_interval=None,
            compression=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = bytes(exc.response.body or b"").decode("utf-8", "replace").strip()
        await _refuse(
            websocket,
            status,
            f"the broker refused /ws/{path[:100]}: {status} {body[:200]}",
        )
        return
    except Exception as exc:
        await _refuse(websocket, 502, f"cannot reach the broker: {exc}")
        return
    await websocket.accept()

    async def to_broker() -> tuple[int, str]:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return int(message.get("code", 1000)), str(message.get("reason") or "")
            if message.get("text") is not None:
                await upstream.send(message["text"])
            elif message.get("bytes") is not None:
                await upstream.send(message["bytes"])

    async def to_caller() -> tuple[int, str]:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await websocket.send_text(data)
                else:
                    await websocket.send_bytes(data)
        except ConnectionClosed:
            pass
        code = upstream.close_code
        if code is None:
            return 1006, "the broker connection was lost"
        return int(code), str(upstream.close_reason or "")

    up = asyncio.create_task(to_broker())
    down = asyncio.create_task(to_caller())
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if down in done:
            code, reason = _result(down)
            up.cancel()
            with contextlib.suppress(Exception):
                await websocket.close(code=_sendable(code), reason=reason)
        else:
            code, reason = _result(up)
            down.cancel()
            with contextlib.suppress(Exception):
                await upstream.close(code=_sendable(code), reason=reason)
    finally:
        for task in (up, down):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await upstream.close()


def _result(task: asyncio.Task[Any]) -> tuple[int, str]:
    try:
        return task.result()  # type: ignore[no-any-return]
    except WebSocketDisconnect as exc:
        return exc.code, str(exc.reason or "")
    except Exception as exc:
        return 1011, f"the gateway lost the connection: {type(exc).__name__}"


def _sendable(code: int) -> int:
    """A close code that may be sent (1005/1006/1015 may not)."""
    return 1000 if code in (1005, 1006, 1015) or code < 1000 else code


def routes() -> list[WebSocketRoute]:
    """The pass-through route."""
    return [WebSocketRoute("/ws/{path:path}", passthrough)]
