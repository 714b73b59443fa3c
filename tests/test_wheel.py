"""The wheel: built from this checkout, installed without -e into a fresh virtual environment, it
installs one top-level package (sensekit, with sensekit.distill and sensekit.schemas inside) and
its `sensekit` command answers `info` and `query` on a store. Offline and quick: no build
isolation, no dependencies installed (the fresh environment sees this one's packages through a
.pth file, as --system-site-packages would see a system's)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from helpers import make_store

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "sensekit", "distill", "schemas")


def _run(cmd: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.mark.slow
def test_the_wheel_installs_only_sensekit_and_its_command_runs(tmp_path, tokenizer_json):
    pytest.importorskip("setuptools")
    store_dir = make_store(tmp_path / "tiny.sensekit", tmp_path, teacher_name="tiny", tokenizer_json=tokenizer_json)
    src = tmp_path / "src"  # a copy: the build's build/ and egg-info stay out of the checkout
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, src], tmp_path)
    (wheel,) = dist.glob("sensekit-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["sensekit"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"sensekit"}
    assert {"sensekit/distill/train.py", "sensekit/distill/compare/runner.py", "sensekit/schemas/store.sql"} <= set(
        names
    )

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path).stdout.strip()
    )
    (site / "_sensekit_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch, duckdb, ...
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], tmp_path)

    where = _run(
        [python, "-c", "import sensekit, sensekit.distill.config, sensekit.schemas; print(sensekit.__file__)"], tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)  # the installed copy, not this checkout
    probe = "import importlib.util as u; print(u.find_spec('distill'), u.find_spec('schemas'))"
    assert _run([python, "-c", probe], tmp_path).stdout.split() == ["None", "None"]  # nothing else at top level

    sensekit = venv / "bin" / "sensekit"
    info = json.loads(_run([sensekit, "info", "--store", store_dir, "--json"], tmp_path).stdout)
    assert info["counts"]["tokens"] > 0 and info["schema_version"]
    query = json.loads(_run([sensekit, "query", "bank", "--store", store_dir, "--json", "-k", "3"], tmp_path).stdout)
    assert query["word"] == "bank" and query["senses"] and len(query["neighbors"]) == 3
