"""The admin listener's status page (``GET /admin``) in a real browser: headless Chromium.

Seeded through signed webhooks (``tests.support.seed``). Chromium dumps the DOM (each
seeded queue has a row, each with an inline SVG chart of the last hour's releases) and takes
a 1200x900 screenshot, checked with the standard library only: PNG signature, IHDR size,
and a file size no blank page reaches. Without Chromium the test fails under CI (the CI
script installs Debian's ``chromium``) and is skipped elsewhere.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import trio

from tests.support.processes import debian_binary
from tests.support.seed import seed_queues
from throttled.testing import local_stack

WIDTH, HEIGHT = 1200, 900
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    return debian_binary("chromium", "chromium-browser", package="chromium")


async def _browse(chromium: str, profile: Path, *args: str) -> bytes:
    with trio.fail_after(90):
        done = await trio.run_process([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                      capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert (length, chunk) == (13, b"IHDR")
    return struct.unpack(">II", data[16:24])


async def test_status_page_renders_in_headless_chromium(empty_database, tmp_path):
    chromium = _chromium()
    async with local_stack(empty_database) as stack:
        ids = await seed_queues(stack)
        url = stack.daemons[0].admin_url + "/admin"
        dom = (await _browse(chromium, tmp_path / "dom-profile", "--dump-dom", url)).decode()
        shot = tmp_path / "page.png"
        await _browse(chromium, tmp_path / "shot-profile", f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", url)

    rows = re.findall(r"<tr>(.*?)</tr>", dom, re.S)
    for queue_id in ids.values():
        [row] = [r for r in rows if f'<td class="id">{queue_id}</td>' in r]
        assert "<svg" in row and "<rect" in row, row
    slow = next(r for r in rows if ids["slow"] in r)
    assert "1 per hour" in slow and ">2</td>" in slow  # rate and the 2 held
    assert "active" in dom and str(stack.portal_id) in dom and "valid until" in dom  # the portal and its token
    assert "4 released in the last hour" in dom

    data = shot.read_bytes()
    assert _png_size(data) == (WIDTH, HEIGHT)
    assert len(data) > 10_000, f"screenshot of {len(data)} bytes looks blank"
