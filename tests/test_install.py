"""The package as a new user installs it: the wheel and the sdist build, each installs in a
fresh venv, and README's "Install" steps run as written (in the unpacked sdist).

Needs PyPI (hatchling and the dependencies are fetched, as on a user's machine).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import evstore

ROOT = Path(__file__).resolve().parents[1]


def _run(command: list[str] | str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        shell=isinstance(command, str),
        executable="/bin/bash" if isinstance(command, str) else None,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _install_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "README's Install section has one sh block"
    return blocks[0]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # python -m build: the sdist first, then the wheel built from the unpacked sdist.
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    return out


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    return env


def test_the_wheel_installs_in_a_fresh_venv_and_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob("evstore-*.whl")
    assert wheel.name.startswith(f"evstore-{evstore.__version__}-")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], cwd=tmp_path)
    version = _run(
        [str(venv / "bin" / "python"), "-c", "import evstore; print(evstore.__version__)"],
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert version.strip() == evstore.__version__
    _run([str(venv / "bin" / "evstore"), "demo", "--path", "d.db"], cwd=tmp_path, env=_clean_env())
    stats = _run(
        [str(venv / "bin" / "evstore"), "stats", "--json", "--url", "sqlite:///d.db"],
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert '"events": 18' in stats
    # Nothing but the three runtime dependencies (and their own) came with it.
    frozen = _run([str(venv / "bin" / "pip"), "freeze"], cwd=tmp_path).lower().splitlines()
    names = {re.split(r"==| @ ", line)[0] for line in frozen}
    assert {"evstore", "orjson", "click", "rich"} <= names
    assert not names & {"psycopg", "psycopg-binary", "pymongo", "pytest", "pydantic"}


def test_readme_install_steps_run_as_written_in_the_unpacked_sdist(
    dist: Path, tmp_path: Path
) -> None:
    (sdist,) = dist.glob("evstore-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.glob("evstore-*")
    for needed in ("README.md", "pyproject.toml", "src/evstore/py.typed"):
        assert (tree / needed).exists(), needed
    output = _run("set -euo pipefail\n" + _install_block(), cwd=tree, env=_clean_env())
    assert output.splitlines()[-1] == evstore.__version__
    pip = str(tree / ".venv" / "bin" / "pip")
    frozen = _run([pip, "freeze"], cwd=tree).lower()
    assert "psycopg" in frozen and "pymongo" in frozen
    # the `postgres` extra is an alias of `postgresql`
    dry = _run([pip, "install", "--dry-run", "--quiet", ".[postgres]"], cwd=tree)
    assert "error" not in dry.lower()


def test_make_demo_runs_on_a_fresh_checkout_and_its_closing_hint_works_as_typed(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "checkout"
    tracked = _run(["git", "ls-files", "-z"], cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        source, target = ROOT / name, tree / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    env = {k: v for k, v in _clean_env().items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    for run in (1, 2):  # the second run finds the demo's own file and starts it afresh
        output = _run(["make", "demo", f"PYTHON={sys.executable}"], cwd=tree, env=env)
        assert "done" in output, output
        lines = output.strip().splitlines()
        assert lines[-2].startswith("Inspect it"), lines[-2:]
        shown = _run(lines[-1].strip(), cwd=tree, env=env)
        assert "user-0000@1" in shown, (run, shown)
    frozen = _run([str(tree / ".venv" / "bin" / "pip"), "freeze"], cwd=tree).lower()
    names = {re.split(r"==| @ ", line)[0] for line in frozen.splitlines()}
    assert "orjson" in names and not names & {"pytest", "psycopg", "pymongo", "mypy"}
