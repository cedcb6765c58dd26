"""Personal data: what may leave the warehouse, and who may be contacted.

Reports and exports show customers by ``customer_id``; when a record has to be shown (to explain
identity resolution, say), names, e-mails, phones and addresses are masked with :func:`mask`.
Anyone picking people to contact goes through :func:`contactable`, which honours consent and
do-not-contact flags.
"""

from __future__ import annotations

import pandas as pd

PERSONAL_COLUMNS = ("first_name", "last_name", "full_name", "email", "phone", "street", "postcode",
                    "city", "birth_date", "loyalty_card", "source_record_id", "customer_ref")


def mask_text(value, keep: int = 1) -> str | None:
    """Keep the first ``keep`` characters of each word, star the rest: "Smith" -> "S****"."""
    if value is None or pd.isna(value):
        return None
    return " ".join(w[:keep] + "*" * max(len(w) - keep, 0) for w in str(value).split(" "))


def mask_email(value) -> str | None:
    """"anna.smith@mail.com" -> "a*********@mail.com": the domain stays, it is not personal."""
    if value is None or pd.isna(value) or "@" not in str(value):
        return mask_text(value)
    local, domain = str(value).rsplit("@", 1)
    return mask_text(local) + "@" + domain


def mask(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every personal column masked (see :data:`PERSONAL_COLUMNS`).

    Web-shop record ids are e-mail addresses, so record ids are masked as e-mails.
    """
    out = df.copy()
    for col in out.columns.intersection(PERSONAL_COLUMNS):
        masker = mask_email if col in ("email", "source_record_id", "customer_ref") else mask_text
        keep = {"phone": 4, "postcode": 2, "loyalty_card": 4}.get(col, 1)
        out[col] = out[col].map(masker if masker is mask_email else (lambda v, k=keep: mask_text(v, k)))
    return out


def drop_personal(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` without personal columns: what an export for analysis needs."""
    return df.drop(columns=list(df.columns.intersection(PERSONAL_COLUMNS)))


def contactable(customers, channel: str, consent: dict[str, str] | None = None):
    """Customers (an Ibis table such as ``dim_customer``) who may be contacted on ``channel``.

    Consent for the channel is required, and do-not-contact overrides it; an unknown flag counts
    as no consent. ``consent`` maps each channel to the column granting it
    (``Settings.channel_consent``; default: the sample's, where calls need the SMS opt-in); a
    channel it does not name is never contactable.
    """
    from crm_helpers.config import Settings

    column = (consent or Settings().channel_consent).get(channel)
    if column is None:
        return customers.filter(False)
    return customers.filter(customers[column].fill_null(False) & ~customers.do_not_contact.fill_null(True))
