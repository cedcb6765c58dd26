"""Paths and settings in one place.

Every path the workbook uses is derived here, from the folder the analyst works in, never from
where the package is installed: the defaults live under the workbook's root (the nearest folder,
from the current one upwards, that holds ``notebooks/``), else under the current folder. Two
environment variables point the workbook at other data without editing code: ``CRM_DATA_DIR``
(the folder holding ``raw/``, ``truth/`` and ``sources.yml``) and ``CRM_WAREHOUSE`` (the DuckDB
warehouse file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_SOURCES_YML = PACKAGE_DIR / "sample" / "sources.yml"

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


def lock_timeout() -> float:
    """Seconds a connection waits for another process's lock on the warehouse (``$CRM_LOCK_TIMEOUT``, 60)."""
    return float(os.environ.get("CRM_LOCK_TIMEOUT", "60"))


def private_files() -> None:
    """Create files from here on readable by their owner only (umask 077).

    Called by every writer of personal data (the warehouse, the sample's raw exports and truth),
    so neither the warehouse nor its write-ahead log nor the raw files are readable by others.
    """
    os.umask(0o077)


class WorkbookNotFound(FileNotFoundError):
    """Asking for the shipped notebooks outside a workbook (no folder holding ``notebooks/``)."""


def workbook_root(start: Path | None = None) -> Path | None:
    """The nearest folder, from ``start`` (default: the current folder) upwards, holding ``notebooks/``.

    Returns ``None`` outside a workbook, for example in an empty folder after ``pip install``.
    """
    here = Path(start or Path.cwd()).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / "notebooks").is_dir()), None)


def project_dir() -> Path:
    """Where the defaults live: the workbook's root, else the current folder."""
    return workbook_root() or Path.cwd()


def notebooks_dir() -> Path:
    """The workbook's numbered notebooks; :class:`WorkbookNotFound` outside a workbook."""
    root = workbook_root()
    if root is None:
        raise WorkbookNotFound(f"no workbook here: neither {Path.cwd()} nor a folder above it holds "
                               "notebooks/; run this from the workbook's folder")
    return root / "notebooks"


def data_dir() -> Path:
    """The data folder: ``$CRM_DATA_DIR`` if set, else ``<project>/data``."""
    return Path(os.environ.get("CRM_DATA_DIR") or project_dir() / "data")


def external_dir() -> Path:
    """Third-party data shipped with the workbook (``<project>/data/external``)."""
    return project_dir() / "data" / "external"


def cdnow_dir() -> Path:
    """The CDNOW purchase data (``<project>/data/external/cdnow``)."""
    return external_dir() / "cdnow"


def reports_dir() -> Path:
    """Generated outputs: executed notebooks and their HTML (``<project>/reports``)."""
    return project_dir() / "reports"


def raw_dir(base: Path | None = None) -> Path:
    """Raw exports of the operational systems, one sub-folder per source."""
    return Path(base or data_dir()) / "raw"


def truth_dir(base: Path | None = None) -> Path:
    """Ground truth of the sample world (never read by the pipeline)."""
    return Path(base or data_dir()) / "truth"


def sources_yml(base: Path | None = None) -> Path:
    """The source declarations that drive ``collect``."""
    return Path(base or data_dir()) / "sources.yml"


def warehouse_path(base: Path | None = None) -> Path:
    """The warehouse file: ``$CRM_WAREHOUSE`` if set, else ``warehouse.duckdb`` in the data folder."""
    return Path(os.environ.get("CRM_WAREHOUSE") or Path(base or data_dir()) / "warehouse.duckdb")


# --- settings: what differs from one organisation to the next --------------------------------

class ConfigError(ValueError):
    """A declarations file that cannot be used: the message names the file, line and column."""


def read_yaml(path: Path) -> dict:
    """Parse a YAML file; a syntax error becomes one :class:`ConfigError` line naming file, line, column."""
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: YAML syntax error: {err.problem or err.context}") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from None
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with 'settings:' and 'sources:'")
    return doc or {}


@dataclass(frozen=True)
class Settings:
    """The organisation's settings: the ``settings:`` block of ``sources.yml``.

    Every field has the sample world's value as its default, so a declarations file only states
    what differs. ``channels`` names the order-line channel values that mean a store sale and a
    web sale; ``web_store_id`` is the store id web orders carry; ``training_stores`` are SQL LIKE
    patterns of store names whose receipts are staff training, not sales; ``junk_*`` list the
    names, e-mail domains and e-mail local parts that mark test records;
    ``quarantine_retention_days`` is how long a quarantined row keeps its raw line;
    ``durable_categories`` are product categories a customer who owns one does not buy again (next
    best product does not offer them twice; the sample world has none: its customers buy a product
    again as readily as another of its category and tier); ``tier_ladder`` orders the product tiers from the
    lowest (an up-sell offers the next one).
    """

    organisation: str = "Sample Retail Ltd"
    currency: str = "GBP"
    country: str = "GB"
    timezone: str = "Europe/London"
    locale: str = "en_GB"
    store_channel: str = "store"
    web_channel: str = "web"
    web_store_id: str = "WEB"
    training_stores: tuple[str, ...] = ("%training%",)
    junk_names: tuple[str, ...] = ("test", "tester", "asdf", "dummy", "xxx", "qa", "demo", "mickey mouse")
    junk_email_domains: tuple[str, ...] = ("example.com", "example.org", "test.invalid", "test.com",
                                           "mailinator.com")
    junk_email_local_parts: tuple[str, ...] = ("test", "qa", "asdf", "noreply", "dummy")
    match_threshold: float = 0.9
    quarantine_retention_days: int = 90
    durable_categories: tuple[str, ...] = ()
    tier_ladder: tuple[str, ...] = ("basic", "plus", "premium")

    @property
    def currency_symbol(self) -> str:
        """The currency's symbol in the settings' locale (GBP -> £, EUR -> €), by babel."""
        from babel.numbers import get_currency_symbol

        return get_currency_symbol(self.currency, locale=self.locale)

    def money(self, value: float, decimals: int = 2) -> str:
        """A money amount as the reader expects it, in the declared currency: ``£1,234.50``."""
        from babel import Locale
        from babel.numbers import format_currency

        standard = Locale.parse(self.locale).currency_formats["standard"].pattern
        pattern = with_decimals(standard, decimals)
        return format_currency(value, self.currency, format=pattern, locale=self.locale, currency_digits=False)

    @classmethod
    def from_mapping(cls, block: dict | None, where: str = "settings") -> "Settings":
        """Settings from a ``settings:`` mapping; unknown keys and bad values raise :class:`ConfigError`."""
        block = dict(block or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(block) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(known)})")
        for name, value in block.items():
            if isinstance(getattr(cls, name), tuple):
                block[name] = tuple([value] if isinstance(value, str) else value or ())
        settings = cls(**block)
        settings.check(where)
        return settings

    def check(self, where: str = "settings") -> None:
        """Raise :class:`ConfigError` for an unknown currency, country or time zone."""
        from zoneinfo import available_timezones

        from babel.numbers import get_currency_name

        if get_currency_name(self.currency, locale="en") == self.currency:
            raise ConfigError(f"{where}: unknown currency {self.currency!r} (an ISO 4217 code such as EUR)")
        if not isinstance(self.quarantine_retention_days, int) or self.quarantine_retention_days < 0:
            raise ConfigError(f"{where}: quarantine_retention_days must be a whole number of days, "
                              f"not {self.quarantine_retention_days!r}")
        if self.timezone not in available_timezones():
            raise ConfigError(f"{where}: unknown time zone {self.timezone!r} (such as Europe/Paris)")
        import phonenumbers

        if phonenumbers.country_code_for_region(self.country) == 0:
            raise ConfigError(f"{where}: unknown country {self.country!r} (an ISO 3166 code such as FR)")


def with_decimals(pattern: str, decimals: int) -> str:
    """A babel number pattern (``#,##0.00\xa0¤``) with exactly ``decimals`` decimals, the rest kept."""
    import re

    return re.sub(r"0(\.[0#]+)?", "0" + ("." + "0" * decimals if decimals else ""), pattern.split(";")[0], count=1)


def load_settings(path: Path | None = None) -> Settings:
    """The ``settings:`` block of a declarations file (default ``<data>/sources.yml``, else the sample's)."""
    path = Path(path) if path is not None else sources_yml()
    if not path.exists():
        path = SAMPLE_SOURCES_YML
    return Settings.from_mapping(read_yaml(path).get("settings"), where=f"{path}: settings")
