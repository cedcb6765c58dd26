"""Paths and settings in one place.

Every path the workbook uses is derived here. Two environment variables let an analyst point the
workbook at other data without editing code: ``CRM_DATA_DIR`` (the folder holding ``raw/``,
``truth/`` and ``sources.yml``) and ``CRM_WAREHOUSE`` (the DuckDB warehouse file).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_SOURCES_YML = PACKAGE_DIR / "sample_sources.yml"
EXTERNAL_DIR = PROJECT_DIR / "data" / "external"
CDNOW_DIR = EXTERNAL_DIR / "cdnow"
REPORTS_DIR = PROJECT_DIR / "reports"

# The sample world's fixed window.
START_DATE = date(2023, 1, 1)
END_DATE = date(2025, 12, 31)
DEFAULT_SEED = 42
SAMPLE_SIZES = {"small": 2_000, "default": 20_000}


def memory_limit() -> str:
    """DuckDB's memory limit for each engine connection (``$CRM_MEMORY_LIMIT``, default 3GB).

    DuckDB would otherwise take up to 80% of the machine's memory per connection; past the limit
    it spills to disk, so big samples run in bounded memory.
    """
    return os.environ.get("CRM_MEMORY_LIMIT", "3GB")


def data_dir() -> Path:
    """The data folder: ``$CRM_DATA_DIR`` if set, else ``<project>/data``."""
    return Path(os.environ.get("CRM_DATA_DIR", PROJECT_DIR / "data"))


def raw_dir(base: Path | None = None) -> Path:
    """Raw exports of the operational systems, one sub-folder per source."""
    return Path(base or data_dir()) / "raw"


def truth_dir(base: Path | None = None) -> Path:
    """Ground truth of the sample world (never read by the pipeline)."""
    return Path(base or data_dir()) / "truth"


def sources_yml(base: Path | None = None) -> Path:
    """The source declarations that drive ``collect``."""
    return Path(base or data_dir()) / "sources.yml"


def warehouse_path() -> Path:
    """The warehouse file: ``$CRM_WAREHOUSE`` if set, else ``<data>/warehouse.duckdb``."""
    return Path(os.environ.get("CRM_WAREHOUSE", data_dir() / "warehouse.duckdb"))
