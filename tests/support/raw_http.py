"""A raw TCP client for the tests that must misbehave below HTTP: trickle a request head,
stall mid-body, or announce more than they send."""

from __future__ import annotations

import trio


async def raw_exchange(url: str, plan: list[bytes | float]) -> tuple[bytes, float]:
    """Connect to ``url``, send ``plan`` (bytes are sent, numbers are pauses in seconds) until
    the server hangs up; returns what the server sent and seconds from connect to its close."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    started, received, closed = trio.current_time(), bytearray(), trio.Event()
    closed_after = [0.0]

    async def read() -> None:
        try:
            while chunk := await stream.receive_some(65536):
                received.extend(chunk)
        except trio.BrokenResourceError:
            pass
        closed_after[0] = trio.current_time() - started
        closed.set()

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for step in plan:
            if closed.is_set():
                break
            try:
                if isinstance(step, bytes):
                    await stream.send_all(step)
                else:
                    with trio.move_on_after(step):
                        await closed.wait()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                break
        await closed.wait()
    return bytes(received), closed_after[0]
