"""An installed checkout imports every top-level package of the tree, tiny_models included.

Tests and scripts put the repo root on sys.path and would import a package that pyproject.toml's list leaves
out; an installed copy, run from elsewhere, would not, so it is installed here and imported from outside.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = sorted(p.parent.name for p in ROOT.glob("*/__init__.py"))

FIND = """
import importlib.util, json, sys
import tiny_models.teacher
specs = {name: importlib.util.find_spec(name) for name in sys.argv[1:]}
print(json.dumps({"origins": {n: s and s.origin for n, s in specs.items()}, "teacher": tiny_models.teacher.__file__}))
"""


@pytest.mark.slow
def test_every_package_of_the_tree_is_installed(tmp_path):
    assert "tiny_models" in PACKAGES and "pipeline" in PACKAGES
    tree = tmp_path / "tree"  # what a checkout installs from: the project file, the readme it names, the packages
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
                              "--disable-pip-version-check", "--target", str(site), str(tree)],
                             capture_output=True, text=True, cwd=tmp_path)
    assert install.returncode == 0, install.stderr[-3000:]
    # From a folder outside the tree, with the installed copy first: the venv's editable finder of this
    # checkout comes after it on the import path and knows only the packages it was installed with.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = subprocess.run([sys.executable, "-c", FIND, *PACKAGES], capture_output=True, text=True, cwd=elsewhere,
                           env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)})
    assert found.returncode == 0, found.stderr[-3000:]
    result = json.loads(found.stdout)
    assert all(origin and Path(origin).is_relative_to(site) for origin in result["origins"].values()), result
    assert Path(result["teacher"]).is_relative_to(site)
