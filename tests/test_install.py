"""The installed package finds its grammar and shipped specs from any working directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import resdsl


def test_build_runs_from_another_directory(tmp_path):
    # PYTHONPATH points at whichever resdsl this test imported: site-packages after `pip install .`.
    env = dict(os.environ, PYTHONPATH=str(Path(resdsl.__file__).resolve().parent.parent))
    r = subprocess.run([sys.executable, "-m", "resdsl", "build", "resnet18", "--json"], cwd=tmp_path, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["params"] == 11_689_512 and out["flops"] == 1_814_073_344
    assert [s["name"] for s in out["stages"]] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]


def test_every_package_folder_is_installed():
    """pyproject.toml lists the packages by name: a new folder missing there would be left out of
    `pip install .` (the editable install of development would not show it)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(root).parts) for p in (root / "resdsl").rglob("__init__.py")}
    assert folders <= listed, sorted(folders - listed)
