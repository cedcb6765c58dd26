"""Keep ``environment.yml`` (conda-forge) and ``pyproject.toml`` (pip) in step.

Conda-forge names a few packages differently from PyPI; :data:`CONDA_NAMES` maps them. The test
suite compares the two files with :func:`pip_requirements` and :func:`conda_requirements`.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

CONDA_NAMES = {"duckdb": "python-duckdb", "ibis-framework[duckdb]": "ibis-duckdb"}
CONDA_ONLY = {"python", "pip", "uv"}
_SPEC = re.compile(r"^([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$")


def _split(requirement: str) -> tuple[str, str]:
    name, spec = _SPEC.match(requirement.strip()).groups()
    return name.lower(), spec.replace(" ", "")


def pip_requirements(pyproject: Path) -> dict[str, str]:
    """Runtime dependencies of ``pyproject.toml`` as {conda-forge name: version spec}."""
    deps = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    return {CONDA_NAMES.get(name, name): spec for name, spec in map(_split, deps)}


def conda_requirements(environment_yml: Path) -> dict[str, str]:
    """Conda-forge dependencies of ``environment.yml`` (without python, pip, uv) as {name: spec}."""
    deps = yaml.safe_load(Path(environment_yml).read_text())["dependencies"]
    pairs = (_split(d) for d in deps if isinstance(d, str))
    return {name: spec for name, spec in pairs if name not in CONDA_ONLY}
