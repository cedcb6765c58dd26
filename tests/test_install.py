"""Installed from a wheel, the workbook writes where the analyst works, never inside site-packages.

The package is installed (not editable) into a fresh virtual environment that borrows this
interpreter's dependencies through a ``.pth`` file, so the test needs no network. Then ``crm
sample``, ``crm collect`` and ``crm integrate`` run in an empty folder with no ``--data``.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from crm_helpers import config

ROOT = Path(__file__).resolve().parents[1]


def files_under(folder: Path) -> set[Path]:
    """Every file below ``folder``, compiled byte code aside."""
    return {p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """A venv with ``crm_helpers`` installed from a copy of this checkout: (its bin/, its site-packages)."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"  # pip builds in the source tree: build from a copy, not the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "crm_helpers", source / "crm_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    target = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True).stdout.strip())
    # Dependencies (and setuptools, to build) come from this interpreter's site-packages; paths a
    # .pth file adds come after the venv's own, so the installed copy wins over any other.
    (target / "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", str(source)], check=True, env=clean_env())
    return venv / "bin", target


def clean_env() -> dict[str, str]:
    """The environment without anything pointing at this checkout or its data."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CRM_DATA_DIR", "CRM_WAREHOUSE")}


@pytest.mark.slow
def test_the_installed_package_is_the_one_imported(installed, tmp_path):
    bin_dir, target = installed
    where = subprocess.run([bin_dir / "python", "-c", "import crm_helpers; print(crm_helpers.__file__)"],
                           cwd=tmp_path, env=clean_env(), check=True, capture_output=True, text=True).stdout
    assert Path(where.strip()) == target / "crm_helpers" / "__init__.py"


@pytest.mark.slow
def test_sample_collect_integrate_write_only_in_the_current_folder(installed, tmp_path):
    bin_dir, target = installed
    work = tmp_path / "work"
    work.mkdir()
    assert config.workbook_root(work) is None, "the temporary folder sits inside a workbook"
    before = files_under(target)
    for step in (["sample", "--customers", "300"], ["collect"], ["integrate"]):
        done = subprocess.run([bin_dir / "crm", *step], cwd=work, env=clean_env(), capture_output=True, text=True)
        assert done.returncode == 0, f"crm {' '.join(step)}: {done.stderr[-2000:]}"
    assert files_under(target) == before, "the workbook wrote inside site-packages"
    written = files_under(work)
    assert {p.parts[0] for p in written} == {"data"}
    assert {Path("data/sources.yml"), Path("data/warehouse.duckdb")} <= written
    assert sum(p.parts[1] == "raw" for p in written) > 10
    assert sum(p.parts[1] == "truth" for p in written) > 0
