"""A streamed page as an HTTP response: Starlette's `StreamingResponse`, with a cheaper watch for the visitor leaving.

A server speaking ASGI 2.3 (uvicorn) gives no sign that the client left but an `http.disconnect` from
`receive()`, so Starlette streams each response inside an anyio task group beside a task waiting for it,
and cancels the group when either ends. That group is most of what the layers cost per page: about 100 µs of
CPU against 20 µs for all of Starlette's routing (bench/layers_micro.py, issue 19). `PageResponse` keeps the
behaviour (the visitor leaving cancels the rest of the page, its loads included) with one plain asyncio task
that waits for `http.disconnect` and cancels the streaming one. From ASGI 2.4 on, where `send` raises when
the client is gone, Starlette's own path (no watch at all) is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send


class PageResponse(StreamingResponse):
    """`StreamingResponse` whose streaming stops, cancelled, when the visitor leaves before the end."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec_version = scope.get("asgi", {}).get("spec_version", "2.0")
        if scope["type"] != "http" or tuple(map(int, spec_version.split("."))) >= (2, 4):
            await super().__call__(scope, receive, send)
            return
        streaming = asyncio.current_task()
        assert streaming is not None  # an ASGI app runs in a task
        ending = left = False

        async def watch() -> None:
            nonlocal left
            while (await receive())["type"] != "http.disconnect":
                pass
            if not ending:  # the server also says `http.disconnect` once the whole answer is sent
                left = True
                streaming.cancel()

        def sending(message: Message) -> Awaitable[None]:
            """`send`, noting the last message: a plain function handing on `send`'s awaitable (no coroutine of its
            own a message; issue 19)."""
            nonlocal ending
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                ending = True  # the last message: a server may yield in `send` after it marked the answer whole
            return send(message)

        watcher = asyncio.create_task(watch())
        try:
            await self.stream_response(sending)
        except asyncio.CancelledError:
            # Our own cancel, and no one else's (a server shutting down): the visitor left; nothing to answer.
            if not left or streaming.uncancel() > 0:
                raise
        finally:
            ending = True
            watcher.cancel()
        if self.background is not None:
            await self.background()
