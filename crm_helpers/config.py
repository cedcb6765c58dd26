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
from dataclasses import MISSING, dataclass, field, fields
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


#: The plan's offers (``wisdom.campaigns.OFFERS``), which ``Settings.offer_types`` maps to past offer types.
PLAN_OFFERS = ("cross_sell", "up_sell", "retention", "win_back")


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

    Campaigns (the wisdom stage; channels are the keys of ``contact_costs``): ``contact_costs``
    is the cost of one contact per channel, in the declared currency; ``channel_consent`` names
    the ``dim_customer`` column that grants consent for each channel (an unknown value counts as
    no consent, and ``do_not_contact`` always overrides it); ``channel_contact_field`` the one
    contact field an export for the channel carries; ``call_centre_hours`` and ``call_minutes``
    give the call channel's capacity per plan period (hours x 60 / minutes per call);
    ``max_contacts_per_customer`` limits contacts per customer per plan; no SMS goes to a
    customer within ``sms_after_email_days`` of an e-mail on the same offer; ``assumed_uplift``
    lets a channel without campaign history borrow another channel's estimated uplift times a
    factor (``{"call": ["sms", 1.5]}``) until a measured campaign replaces the assumption;
    ``offer_types`` says which kind of past offer (``dim_campaign.offer_type``: ``discount``,
    ``category``, ``reactivation`` in the sample) each plan offer resembles, so its uplift is
    learnt from those campaigns (a type the history lacks falls back to the channel's mix).
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
    contact_costs: dict[str, float] = field(default_factory=lambda: {"email": 0.05, "sms": 0.12, "call": 4.50})
    channel_consent: dict[str, str] = field(default_factory=lambda: {"email": "email_opt_in", "sms": "sms_opt_in",
                                                                     "call": "sms_opt_in"})
    channel_contact_field: dict[str, str] = field(default_factory=lambda: {"email": "email", "sms": "phone",
                                                                           "call": "phone"})
    call_centre_hours: float = 200
    call_minutes: float = 6
    max_contacts_per_customer: int = 1
    sms_after_email_days: int = 7
    assumed_uplift: dict[str, tuple[str, float]] = field(default_factory=lambda: {"call": ("sms", 1.5)})
    offer_types: dict[str, str] = field(default_factory=lambda: {
        "cross_sell": "category", "up_sell": "category", "retention": "discount", "win_back": "reactivation"})

    @property
    def channels(self) -> tuple[str, ...]:
        """The contact channels, in the order ``contact_costs`` declares them."""
        return tuple(self.contact_costs)

    @property
    def channel_capacity(self) -> dict[str, int]:
        """Contacts each capacity-limited channel can make per plan period: calls only, from the
        call centre's hours (``{"call": 2000}`` by default); other channels are unlimited."""
        return {"call": int(self.call_centre_hours * 60 // self.call_minutes)} if "call" in self.contact_costs else {}

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
            if isinstance(known[name].default, tuple):
                block[name] = tuple([value] if isinstance(value, str) else value or ())
            elif known[name].default_factory is not MISSING:  # a mapping of channel to value
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {name} must map each channel to a value, not {value!r}")
                block[name] = {str(k): tuple(v) if isinstance(v, list) else v for k, v in value.items()}
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
        self._check_campaigns(where)
        import phonenumbers

        if phonenumbers.country_code_for_region(self.country) == 0:
            raise ConfigError(f"{where}: unknown country {self.country!r} (an ISO 3166 code such as FR)")


    def _check_campaigns(self, where: str) -> None:
        """Raise :class:`ConfigError` for a campaign setting that cannot be used (see the class)."""
        channels = set(self.contact_costs)
        for name in ("channel_consent", "channel_contact_field"):
            missing = sorted(channels - set(getattr(self, name)))
            if missing:
                raise ConfigError(f"{where}: {name} says nothing about channel {missing[0]!r}")
        bad = {k: v for k, v in self.contact_costs.items() if not isinstance(v, (int, float)) or v < 0}
        if bad:
            raise ConfigError(f"{where}: contact_costs must be amounts of at least 0, not {bad}")
        for number in ("call_centre_hours", "call_minutes", "max_contacts_per_customer", "sms_after_email_days"):
            value = getattr(self, number)
            if not isinstance(value, (int, float)) or value < 0 or (number == "call_minutes" and value == 0):
                raise ConfigError(f"{where}: {number} must be a positive number, not {value!r}")
        for channel, rule in self.assumed_uplift.items():
            if not (isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in channels
                    and isinstance(rule[1], (int, float))):
                raise ConfigError(f"{where}: assumed_uplift of {channel!r} must be [another channel, factor], "
                                  f"not {rule!r}")
        bad = {k: v for k, v in self.offer_types.items() if k not in PLAN_OFFERS or not (isinstance(v, str) and v)}
        if bad:
            raise ConfigError(f"{where}: offer_types must map plan offers ({', '.join(PLAN_OFFERS)}) to an "
                              f"offer type of the campaign history, not {bad}")


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
