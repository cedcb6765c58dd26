"""Shared fixtures: the small sample world, collected and integrated once per test session.

The numbered notebooks (run by nbval) read the same small world: when notebooks are among the
collected items, ``CRM_DATA_DIR`` and ``CRM_WAREHOUSE`` are pointed at it before any kernel
starts; every Python test runs without them (an autouse fixture), so nothing writes into it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

SMALL_CUSTOMERS = 2_000
SMALL_SEED = 7
_world: dict[str, Path] = {}


def build_world(base: Path, customers: int, seed: int) -> Path:
    """Generate a sample world in ``base``, collect and integrate it; return ``base``."""
    from crm_helpers.data.collect import collect
    from crm_helpers.information.integrate import integrate
    from crm_helpers.sample import generate

    generate(base, customers=customers, seed=seed, progress=False)
    collect(base, base / "warehouse.duckdb", progress=False)
    integrate(base / "warehouse.duckdb", progress=False)
    return base


def build_small_world() -> Path:
    """Generate, collect and integrate the small sample once; return its data folder."""
    if "dir" not in _world:
        _world["dir"] = build_world(Path(tempfile.mkdtemp(prefix="crm-small-world-")),
                                    SMALL_CUSTOMERS, SMALL_SEED)
    return _world["dir"]


def pytest_collection_modifyitems(session, config, items):
    if any(str(item.fspath).endswith(".ipynb") for item in items):
        base = build_small_world()
        os.environ["CRM_DATA_DIR"] = str(base)
        os.environ["CRM_WAREHOUSE"] = str(base / "warehouse.duckdb")
        os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _no_small_world_paths(monkeypatch):
    """Python tests run without the notebooks' paths: a command they run must not write into
    the small world (nbval's notebook items take no fixtures, so their kernels keep them)."""
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    monkeypatch.delenv("CRM_WAREHOUSE", raising=False)


def pytest_sessionfinish(session, exitstatus):
    if "dir" in _world:
        shutil.rmtree(_world["dir"], ignore_errors=True)


@pytest.fixture(scope="session")
def small_world() -> Path:
    """Data folder of the small sample world (raw/, truth/, sources.yml, warehouse.duckdb)."""
    return build_small_world()


@pytest.fixture(scope="session")
def small_warehouse(small_world) -> Path:
    """The small sample's warehouse file, after collect and integrate."""
    return small_world / "warehouse.duckdb"


@pytest.fixture(scope="session")
def small_truth_dir(small_world) -> Path:
    """The small sample's ground truth."""
    return small_world / "truth"


@pytest.fixture(scope="session")
def world_20k(tmp_path_factory) -> Path:
    """The default sample world (20,000 people, the default seed), collected and integrated once
    per session: the calibration targets of the sample world are checked on it."""
    from crm_helpers.config import DEFAULT_SEED, SAMPLE_SIZES

    return build_world(tmp_path_factory.mktemp("world20k"), SAMPLE_SIZES["default"], DEFAULT_SEED)
