"""Every Python snippet of README.md and docs/*.md runs as written, twice in a row, and
type-checks with ``mypy --strict``.

A file's snippets run as one program, in order (as a reader types them into one session),
in a fresh directory: twice, so that a snippet that only works on a fresh database fails.
A fence written ```` ```python not-run ```` is type-checked only; the test lists them, and
each says in the text around it why it cannot run here (a server this machine lacks).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends.postgresql import admin_connection

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.S | re.M)
NOT_RUN = {("mongodb.md", 1)}  # (file, block): a replica set at the hosts it names


def snippets(doc: Path) -> list[tuple[str, str]]:
    """The Python blocks of a document: (info string, code)."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(doc.read_text())]


def program(doc: Path, *, runnable: bool) -> str:
    blocks = []
    for number, (info, code) in enumerate(snippets(doc), 1):
        skip = info == "not-run"
        assert skip == ((doc.name, number) in NOT_RUN), (doc.name, number, info)
        if skip and runnable:
            continue
        blocks.append(f"# --- {doc.name}, block {number}\n{code}")
    return "\n".join(blocks)


WITH_SNIPPETS = [d for d in DOCS if snippets(d)]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EVSTORE_URL"}


@pytest.mark.parametrize("doc", WITH_SNIPPETS, ids=lambda d: d.name)
def test_snippets_run_as_written_twice_in_a_row(doc: Path, tmp_path: Path) -> None:
    source = tmp_path / f"{doc.stem.lower()}_snippets.py"
    source.write_text(program(doc, runnable=True))
    for attempt in (1, 2):
        done = subprocess.run(
            [sys.executable, str(source)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"run {attempt} of {doc.name}:\n{done.stderr}"
        assert "Traceback" not in done.stderr
    if doc.name == "postgresql.md":  # its example schema, on the shared server
        with admin_connection() as admin:
            admin.execute("DROP SCHEMA IF EXISTS orders CASCADE")


def test_snippets_type_check_with_mypy_strict(tmp_path: Path) -> None:
    files = []
    for doc in WITH_SNIPPETS:
        folder = tmp_path / doc.stem.lower()  # one module per folder: names may repeat
        folder.mkdir()
        path = folder / "snippets.py"
        path.write_text(program(doc, runnable=False))
        files.append(str(path))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--scripts-are-modules",
         "--explicit-package-bases", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
