"""The sync code is generated from the async source and must not be stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import async_to_sync  # noqa: E402


def test_generated_sync_files_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "async_to_sync.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_conversion_drops_async_and_maps_names() -> None:
    source = (
        "from evstore import _aio\n"
        "class AsyncThing:\n"
        '    """Wraps an AsyncEventStore."""\n'
        "    async def __aenter__(self) -> AsyncThing:\n"
        "        async with self.lock:\n"
        "            x = [e async for e in self.it()]\n"
        "        await _aio.sleep(1)\n"
        "        return self\n"
        "    # async-only: begin\n"
        "    def __await__(self): ...\n"
        "    # async-only: end\n"
    )
    out = async_to_sync.convert(source)
    assert "await" not in out.replace("__await__", "")
    assert "async " not in out
    assert "_sio.sleep(1)" in out
    assert "def __enter__" in out
    assert "Wraps an EventStore." in out
    assert "__await__" not in out
    assert "x = [e for e in self.it()]" in out
