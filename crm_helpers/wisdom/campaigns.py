"""Campaign types and candidates: who could get which offer through which channel, and what it is worth.

From what the warehouse knows at ``as_of`` (``customer_scores``, ``next_best_offer``, the order
lines and ``dim_customer``'s consent), every customer eligible for an offer becomes one
candidate row per channel, with the customer's estimated uplift on that channel (from
``wisdom.uplift``), the margin a purchase brings (``value``), the expected incremental margin
(``uplift x value``), the contact cost (``Settings.contact_costs``) and whether the contact is
``allowed`` at all. The contact optimiser (``wisdom.optimise``) then picks rows.

Campaign types (``offer``) and their eligibility rules, with the thresholds in :class:`Rules`:

- ``cross_sell``: the customer's best next-best-product offer (notebook 06) that is not an
  up-sell, for customers probably still active (``p_alive`` at least ``cross_sell_p_alive``);
  value = the offered product's mean margin per line.
- ``up_sell``: the next tier of the customer's main category (notebook 06's up-sell offers, given
  to the customers most likely to move up); value = that product's mean margin per line.
- ``retention``: high churn risk (``churn_probability`` at least ``retention_churn``) AND high
  value (past margin in the top ``1 - value_quantile`` of scored customers), still probably
  active (``p_alive`` at least ``win_back_p_alive``); value = the customer's mean order margin.
- ``win_back``: former customers: ``p_alive`` below ``win_back_p_alive``, at least
  ``win_back_orders`` orders and high past value (as for retention); still contactable (the
  ``allowed`` flag); value = the customer's mean order margin.

``allowed`` = consent for the channel (``Settings.channel_consent``; ``do_not_contact``
overrides it, an unknown flag is no consent) AND the channel's contact field on file AND no
conflict with recent contact history: no SMS to a customer who was e-mailed the same offer
(treatment arm of ``campaign_plan``) within ``Settings.sms_after_email_days`` before ``as_of``.

Hold-out sizing (:func:`holdout_size`) states its rule: the smallest control group that gives
the test the wanted power for the expected uplift (two-sided z-test of two proportions,
statsmodels), capped at a share of the list; :func:`profit_test_size` gives the
profit-maximising alternative of Feit & Berman (2019) for comparison. A channel without history
(calls in the sample) can be tested on purpose (:func:`channel_test`): contacts added to the
plan so that the channel gets measured and its assumed uplift replaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ibis.backends import BaseBackend

from crm_helpers import config, privacy
from crm_helpers import warehouse as wh
from crm_helpers.information import star

OFFERS = config.PLAN_OFFERS
#: Customers with no purchase for more than this many days (but some before) count as lapsed.
LAPSED_DAYS = 120
COLUMNS = ["customer_id", "channel", "offer", "uplift", "p_response", "value", "expected_margin", "cost",
           "allowed"]
#: How notebook 06 words an up-sell offer's reason (``next_best.REASONS["upsell"]``).
UPSELL_REASON = "next tier of"
PLAN_TABLE = "campaign_plan"


class MissingKnowledge(RuntimeError):
    """A table the candidates need (scores, offers) is not in the warehouse yet."""


@dataclass(frozen=True)
class Rules:
    """Eligibility thresholds of the campaign types (see the module docstring)."""

    cross_sell_p_alive: float = 0.5
    retention_churn: float = 0.5
    value_quantile: float = 0.5
    win_back_p_alive: float = 0.3
    win_back_orders: int = 2

    def table(self) -> pd.DataFrame:
        """The thresholds in words, each in its unit (index: the rule), for a notebook's table."""
        from crm_helpers.display import fmt

        rows = {"cross-sell: P(alive) at least": fmt(self.cross_sell_p_alive, "rate"),
                "retention: churn probability at least": fmt(self.retention_churn, "rate"),
                "retention and win-back: past margin in the top": fmt(1 - self.value_quantile, "rate"),
                "win-back: P(alive) below": fmt(self.win_back_p_alive, "rate"),
                "win-back: orders at least": fmt(self.win_back_orders, "count")}
        return pd.DataFrame({"threshold": rows}).rename_axis("rule")


def customer_values(con: BaseBackend | str | Path | None, as_of) -> pd.DataFrame:
    """Per customer with a purchase up to ``as_of``: ``orders``, ``margin`` (sales minus cost of
    their purchase lines) and ``order_margin`` (margin per order), aggregated in the engine."""
    lines = star.customer_lines(wh.as_connection(con), as_of)
    lines = lines.filter(lines.is_purchase)
    margin = (lines.line_amount - lines.cost_amount).cast("float64")
    per = lines.group_by("customer_id").aggregate(orders=lines.order_id.nunique(), margin=margin.sum()).execute()
    per = per.set_index("customer_id").sort_index()
    per["order_margin"] = per["margin"] / per["orders"]
    return per


def product_margins(con: BaseBackend | str | Path | None, as_of) -> pd.Series:
    """Each product's mean margin per purchase line up to ``as_of`` (``sku`` -> margin)."""
    lines = star.customer_lines(wh.as_connection(con), as_of)
    lines = lines.filter(lines.is_purchase)
    margin = (lines.line_amount - lines.cost_amount).cast("float64")
    per = lines.group_by("sku").aggregate(margin=margin.mean()).execute()
    return per.set_index("sku")["margin"].sort_index()


def _require(con: BaseBackend, table: str, notebook: str) -> None:
    if table not in con.list_tables():
        raise MissingKnowledge(f"no {table} in the warehouse: run notebook {notebook} first")


def eligible_offers(con: BaseBackend | str | Path | None, as_of, rules: Rules = Rules()) -> pd.DataFrame:
    """One row per customer and offer type they are eligible for, as of ``as_of`` (the latest
    scores and offers made up to that day).

    Columns: customer_id, offer, product (the SKU for cross_sell / up_sell, else None), value
    (the margin a purchase brings, see the module docstring) and the customer's clv (a score
    to rank by, for comparison). Raises :class:`MissingKnowledge`
    (naming the notebook to run) when ``customer_scores`` or ``next_best_offer`` is missing.
    """
    from crm_helpers.knowledge import next_best, scores

    con = wh.as_connection(con)
    _require(con, scores.TABLE, "05_value_and_risk")
    _require(con, next_best.TABLE, "06_next_best_offer")
    day = pd.Timestamp(as_of).date()
    dates = con.table(scores.TABLE)
    scored_on = dates.filter(dates.as_of <= day).as_of.max().execute()
    if scored_on is None or pd.isna(scored_on):
        raise MissingKnowledge(f"no customer_scores up to {day}: run notebook 05_value_and_risk first")
    known = scores.read_customer_scores(con, scored_on).set_index("customer_id")
    values = customer_values(con, as_of).reindex(known.index)
    high_value = values["margin"] >= values["margin"].quantile(rules.value_quantile)
    alive = known["p_alive"]
    parts = []
    retain = (known["churn_probability"] >= rules.retention_churn) & high_value & (alive >= rules.win_back_p_alive)
    parts.append(pd.DataFrame({"customer_id": known.index[retain], "offer": "retention",
                               "value": values.loc[retain, "order_margin"].to_numpy()}))
    lapsed = (alive < rules.win_back_p_alive) & high_value & (values["orders"] >= rules.win_back_orders)
    parts.append(pd.DataFrame({"customer_id": known.index[lapsed], "offer": "win_back",
                               "value": values.loc[lapsed, "order_margin"].to_numpy()}))
    offers = con.table(next_best.TABLE)
    latest = offers.filter(offers.as_of <= day).as_of.max().as_scalar()
    offers = offers.filter(offers.as_of == latest).execute().sort_values(["customer_id", "rank"])
    margins = product_margins(con, as_of)
    is_up = offers["reason"].str.startswith(UPSELL_REASON)
    up = offers[is_up].drop_duplicates("customer_id")
    cross = offers[~is_up].drop_duplicates("customer_id")
    cross = cross[cross["customer_id"].map(alive).fillna(0) >= rules.cross_sell_p_alive]
    for offer, rows in (("cross_sell", cross), ("up_sell", up)):
        parts.append(pd.DataFrame({"customer_id": rows["customer_id"].to_numpy(), "offer": offer,
                                   "product": rows["product"].to_numpy(),
                                   "value": rows["product"].map(margins).to_numpy()}))
    out = pd.concat(parts, ignore_index=True).dropna(subset=["value"])
    out["customer_id"] = out["customer_id"].astype("int64")
    out["product"] = out["product"].astype(object).where(out["product"].notna(), None)
    out["offer"] = pd.Categorical(out["offer"], OFFERS)
    out = out.sort_values(["customer_id", "offer"], ignore_index=True)
    out["offer"] = out["offer"].astype(str)
    out["clv"] = out["customer_id"].map(known["clv"]).astype(float)
    return out[["customer_id", "offer", "product", "value", "clv"]]


def reachable(con: BaseBackend | str | Path | None, settings: config.Settings | None = None) -> pd.DataFrame:
    """Per customer of ``dim_customer``, one boolean column per channel: consent for it (through
    :func:`privacy.contactable`, so ``do_not_contact`` overrides) and its contact field on file."""
    con = wh.as_connection(con)
    settings = settings or wh.settings(con)
    customers = con.table("dim_customer")
    out = pd.DataFrame(index=pd.Index(customers.customer_id.execute().sort_values(), name="customer_id"))
    for channel in settings.channels:
        ok = privacy.contactable(customers, channel, settings.channel_consent)
        field = settings.channel_contact_field[channel]
        ok = ok.filter(ok[field].notnull() & (ok[field].cast("string").strip() != ""))
        out[channel] = out.index.isin(ok.customer_id.execute())
    return out


def recent_contacts(con: BaseBackend | str | Path | None, as_of, days: int) -> pd.DataFrame:
    """Treatment rows of ``campaign_plan`` (customer_id, channel, offer) planned in the ``days``
    before ``as_of`` (up to and including it); empty when no plan was recorded yet."""
    con = wh.as_connection(con)
    if PLAN_TABLE not in con.list_tables():
        return pd.DataFrame(columns=["customer_id", "channel", "offer"])
    day = pd.Timestamp(as_of)
    plan = con.table(PLAN_TABLE)
    recent = plan.filter((plan.arm == "treatment") & (plan.as_of <= day.date())
                         & (plan.as_of > (day - pd.Timedelta(days=days)).date()))
    return recent.select("customer_id", "channel", "offer").distinct().execute()


def candidates(con: BaseBackend | str | Path | None, as_of, uplift: pd.DataFrame, p_response: pd.DataFrame,
               settings: config.Settings | None = None, rules: Rules = Rules()) -> pd.DataFrame:
    """The candidate table: one row per eligible customer x channel x offer (columns
    :data:`COLUMNS`, the team's contract, then ``product`` and the customer's ``clv``), sorted by
    customer, channel and offer.

    ``uplift`` and ``p_response``: the estimated uplift and the probability of buying if
    contacted, indexed by customer_id with one column per channel, or per (channel, offer) when
    :func:`estimates` had ``offer_types`` (from ``wisdom.uplift``); customers without an estimate
    for a channel (and offer) get no row for it. ``cost`` comes from
    ``settings.contact_costs``; ``allowed`` as the module docstring says.
    """
    con = wh.as_connection(con)
    settings = settings or wh.settings(con)
    offers = eligible_offers(con, as_of, rules)
    reach = reachable(con, settings)
    recent = recent_contacts(con, as_of, settings.sms_after_email_days)
    emailed = set(zip(recent.loc[recent["channel"] == "email", "customer_id"],
                      recent.loc[recent["channel"] == "email", "offer"]))
    rows = []
    for channel in settings.channels:
        if channel not in uplift.columns:
            continue
        part = offers.assign(channel=channel)
        part["uplift"] = _per_row(uplift, channel, part)
        part["p_response"] = _per_row(p_response, channel, part) if channel in p_response.columns else np.nan
        part = part.dropna(subset=["uplift"])
        part["cost"] = float(settings.contact_costs[channel])
        allowed = part["customer_id"].map(reach[channel]).fillna(False).astype(bool)
        if channel == "sms" and emailed:
            allowed &= ~pd.Series(list(zip(part["customer_id"], part["offer"])), index=part.index).isin(emailed)
        part["allowed"] = allowed
        rows.append(part)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=COLUMNS)
    out["expected_margin"] = out["uplift"] * out["value"]
    out = out.sort_values(["customer_id", "channel", "offer"], ignore_index=True)
    return out[COLUMNS + ["product", "clv"]].astype({"customer_id": "int64", "allowed": bool})


def _per_row(estimate: pd.DataFrame, channel: str, rows: pd.DataFrame) -> pd.Series:
    """Each row's estimate for ``channel``: by customer, and by the row's offer when ``estimate``
    has (channel, offer) columns (NaN for an offer it lacks)."""
    if not isinstance(estimate.columns, pd.MultiIndex):
        return rows["customer_id"].map(estimate[channel]).astype(float)
    out = pd.Series(np.nan, index=rows.index)
    for offer, part in rows.groupby("offer"):
        if (channel, offer) in estimate.columns:
            out[part.index] = part["customer_id"].map(estimate[(channel, offer)]).astype(float)
    return out


# --- hold-out sizing --------------------------------------------------------------------------

@dataclass(frozen=True)
class Holdout:
    """A control group's size and why: ``control`` customers of ``n`` held out; ``power`` the
    chance the test detects ``uplift`` (two-sided, level ``alpha``) with that split;
    ``capped`` when the wanted power would need more than the cap."""

    n: int
    control: int
    uplift: float
    base_rate: float
    power: float
    capped: bool


def detection_power(n_treatment: int, n_control: int, base_rate: float, uplift: float, alpha: float = 0.05) -> float:
    """Power of the two-sided z-test of two proportions (``base_rate + uplift`` against
    ``base_rate``) with these group sizes (statsmodels' NormalIndPower, Cohen's h)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    if n_treatment < 2 or n_control < 2 or uplift == 0:
        return 0.0
    h = abs(proportion_effectsize(min(base_rate + uplift, 1.0), base_rate))
    return float(NormalIndPower().power(h, nobs1=n_treatment, alpha=alpha, ratio=n_control / n_treatment))


def holdout_size(n: int, base_rate: float, uplift: float, power: float = 0.8, alpha: float = 0.05,
                 max_share: float = 0.5, min_control: int = 30) -> Holdout:
    """The stated rule: the smallest control group (at least ``min_control``) for which a list
    of ``n`` contacts split into treatment and control detects the expected ``uplift`` over the
    ``base_rate`` with probability ``power`` (two-sided, level ``alpha``); at most ``max_share``
    of the list (``capped`` then, with the power that share reaches).

    Power rises with the control group up to an even split, so the size is found by bisection.
    """
    cap = max(int(n * max_share), 0)
    if cap <= min_control or detection_power(n - cap, cap, base_rate, uplift, alpha) < power:
        control = min(cap, n)
        reached = detection_power(n - control, control, base_rate, uplift, alpha)
        return Holdout(n, control, uplift, base_rate, reached, True)
    low, high = min_control, cap
    if detection_power(n - low, low, base_rate, uplift, alpha) >= power:
        return Holdout(n, low, uplift, base_rate, detection_power(n - low, low, base_rate, uplift, alpha), False)
    while high - low > 1:
        middle = (low + high) // 2
        if detection_power(n - middle, middle, base_rate, uplift, alpha) >= power:
            high = middle
        else:
            low = middle
    return Holdout(n, high, uplift, base_rate, detection_power(n - high, high, base_rate, uplift, alpha), False)


def profit_test_size(n: int, response_sd: float, prior_sd: float) -> int:
    """Feit & Berman (2019, Marketing Science) profit-maximising test size per arm for a
    population of ``n``, when the arms' mean responses have a normal prior with standard
    deviation ``prior_sd`` and individual responses a standard deviation ``response_sd``:
    n* = sqrt(n/4 (s/sigma)^2 + (3/4 (s/sigma)^2)^2) - 3/4 (s/sigma)^2."""
    ratio = (response_sd / prior_sd) ** 2
    return int(math.ceil(math.sqrt(n / 4 * ratio + (0.75 * ratio) ** 2) - 0.75 * ratio))


def holdouts(chosen: pd.DataFrame, power: float = 0.8, alpha: float = 0.05, max_share: float = 0.5,
             min_control: int = 30) -> dict[str, Holdout]:
    """:func:`holdout_size` per channel of a plan's chosen rows (``uplift``, ``p_response``): the
    expected uplift is the rows' mean uplift, the base rate their mean ``p_response - uplift``."""
    out = {}
    for channel, rows in chosen.groupby("channel", sort=True):
        base = float((rows["p_response"] - rows["uplift"]).clip(0, 1).mean())
        out[channel] = holdout_size(len(rows), base, float(rows["uplift"].mean()), power, alpha, max_share,
                                    min_control)
    return out


def estimates(model, features: pd.DataFrame, channels, calibration: dict | None = None,
              assumed_uplift: dict | None = None,
              offer_types: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Estimated uplift and P(buy | contacted) per customer (rows) and channel (columns), from a
    fitted ``wisdom.uplift`` model and ``uplift.customer_features``; a channel without history
    borrows another's uplift (``assumed_uplift``, as ``Settings.assumed_uplift``) and its response
    probability, until ``calibration`` (measured campaigns) corrects its uplift.

    ``offer_types`` (as ``Settings.offer_types``: plan offer -> past offer type): the columns are
    then (channel, offer), each offer estimated for its type (a type the channel's history lacks
    gets the channel's pooled mix); None: one pooled column per channel."""
    from crm_helpers.wisdom import uplift

    keys = [(c, None, None) for c in channels] if offer_types is None else \
        [(c, offer, kind) for c in channels for offer, kind in offer_types.items()]

    def frame(**how) -> pd.DataFrame:
        out = {(c, offer) if offer else c: uplift.predict(model, features, c, offer_type=kind, **how)
               for c, offer, kind in keys}
        out = pd.DataFrame(out)
        if offer_types is not None:
            out.columns = pd.MultiIndex.from_tuples(out.columns, names=["channel", "offer"])
        return out

    lift = frame(calibration=calibration, assumed_uplift=assumed_uplift)
    response = frame(assumed_uplift=assumed_uplift, method="response")
    return lift, response


def uplift_by_offer(lift: pd.DataFrame, offer_types: dict[str, str], recency_days: pd.Series,
                    lapsed_days: int = LAPSED_DAYS) -> pd.DataFrame:
    """Mean estimated uplift per plan offer and channel, from :func:`estimates` with
    ``offer_types``: index offer; columns offer_type (the past offer type it is learnt from), then
    per channel ``<channel>`` (all customers) and ``<channel>_lapsed`` (customers with no purchase
    for more than ``lapsed_days`` days, but some before; ``recency_days`` by customer_id)."""
    lapsed = (recency_days > lapsed_days).reindex(lift.index, fill_value=False).to_numpy()
    channels = list(dict.fromkeys(lift.columns.get_level_values(0)))
    rows = {}
    for offer in offer_types:
        row = {"offer_type": offer_types[offer]}
        for channel in channels:
            if (channel, offer) in lift.columns:
                values = lift[(channel, offer)]
                row[channel], row[f"{channel}_lapsed"] = values.mean(), values[lapsed].mean()
        rows[offer] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("offer")


def channel_name(channel: str) -> str:
    """A channel as readers see it: ``email`` -> e-mail, ``sms`` -> SMS, others as they are."""
    return {"email": "e-mail", "sms": "SMS"}.get(channel, channel)


def offer_contrast_words(by_offer: pd.DataFrame, lift: pd.DataFrame, channels) -> str:
    """In words, from :func:`uplift_by_offer` and :func:`estimates`' ``lift``: among ``channels``
    (those with history), the one whose plan offers differ most for lapsed customers, its weakest
    and strongest offer's mean uplift there, and how many customers have a negative estimated
    uplift for each."""
    from crm_helpers import display

    lapsed = by_offer[[f"{ch}_lapsed" for ch in channels]]
    column = lapsed.min().idxmin()
    on, weakest, strongest = column.removesuffix("_lapsed"), lapsed[column].idxmin(), lapsed[column].idxmax()
    named = {o: f"{o.replace('_', '-')} ({by_offer.loc[o, 'offer_type']})" for o in (weakest, strongest)}
    negative = {o: display.fmt(int((lift[(on, o)] < 0).sum()), "count") for o in (weakest, strongest)}
    low, name = lapsed.loc[weakest, column], channel_name(on)
    return (f"**What differs.** For lapsed customers the offers differ most by {name}: {named[weakest]} is "
            f"estimated at {display.fmt(low, 'rate')}"
            + (" (sleeping dogs: the contact loses buyers)" if low < 0 else "")
            + f", {named[strongest]} at {display.fmt(lapsed.loc[strongest, column], 'rate')}. By {name}, "
            f"{negative[weakest]} customers have a negative estimated uplift for {weakest.replace('_', '-')}, "
            f"{negative[strongest]} for {strongest.replace('_', '-')}: each candidate row below carries its "
            "own channel's and offer's uplift.")


# --- summaries the notebook shows -------------------------------------------------------------

def require_knowledge(con: BaseBackend | str | Path | None) -> None:
    """Raise :class:`MissingKnowledge` naming the notebook to run first when ``customer_scores``
    or ``next_best_offer`` is not in the warehouse."""
    from crm_helpers.knowledge import next_best, scores

    con = wh.as_connection(con)
    _require(con, scores.TABLE, "05_value_and_risk")
    _require(con, next_best.TABLE, "06_next_best_offer")


def net_value(candidates: pd.DataFrame) -> pd.Series:
    """Each candidate row's expected net margin: expected incremental margin minus contact cost."""
    return candidates["expected_margin"] - candidates["cost"]


def targeting_by_channel(candidates: pd.DataFrame) -> pd.DataFrame:
    """Per channel, targeting by expected value against targeting by response, on the allowed
    rows of each customer's best offer: ``allowed`` customers, ``by_value`` (those with a positive
    expected net margin), ``negative_uplift`` (sleeping dogs: uplift below 0), ``dogs_by_response``
    (of them, how many the same number of contacts picked by highest ``p_response`` would reach),
    and the expected net margin of each pick (``net_by_value``, ``net_by_response``)."""
    rows = candidates[candidates["allowed"]].assign(net=net_value)
    best = rows.sort_values("net", ascending=False, kind="stable").drop_duplicates(["customer_id", "channel"])
    out = {}
    for channel, part in best.groupby("channel", sort=False):
        by_value = part[part["net"] > 0]
        by_response = part.sort_values("p_response", ascending=False, kind="stable").head(len(by_value))
        out[channel] = {"allowed": len(part), "by_value": len(by_value),
                        "negative_uplift": int((part["uplift"] < 0).sum()),
                        "dogs_by_response": int((by_response["uplift"] < 0).sum()),
                        "net_by_value": float(by_value["net"].sum()),
                        "net_by_response": float(by_response["net"].sum())}
    order = [c for c in ("email", "sms", "call") if c in out] + sorted(set(out) - {"email", "sms", "call"})
    return pd.DataFrame.from_dict(out, orient="index").loc[order].rename_axis("channel")


def offer_summary(candidates: pd.DataFrame) -> pd.DataFrame:
    """Per campaign type: eligible ``customers``, those ``reachable`` on at least one channel,
    the mean ``value`` of a purchase and the mean estimated ``uplift`` over the allowed rows."""
    grouped = candidates.groupby("offer")
    allowed = candidates[candidates["allowed"]].groupby("offer")
    out = pd.DataFrame({"customers": grouped["customer_id"].nunique(), "reachable": allowed["customer_id"].nunique(),
                        "value": grouped["value"].mean(), "uplift": allowed["uplift"].mean()})
    return out.reindex([o for o in OFFERS if o in out.index]).fillna({"reachable": 0}).rename_axis("offer")


def consent_breaches(con: BaseBackend | str | Path | None, rows: pd.DataFrame,
                     settings: config.Settings | None = None) -> pd.DataFrame:
    """The rows (customer_id, channel) whose customer may not be contacted on that channel, checked
    afresh from ``dim_customer`` in pandas (consent column true, do-not-contact false, contact field
    on file): empty for a sound candidate list or plan."""
    con = wh.as_connection(con)
    settings = settings or wh.settings(con)
    columns = sorted({"customer_id", "do_not_contact", *settings.channel_consent.values(),
                      *settings.channel_contact_field.values()})
    people = con.table("dim_customer").select(*columns).execute().set_index("customer_id")
    flags = people.reindex(rows["customer_id"].to_numpy())
    ok = np.zeros(len(rows), dtype=bool)
    for channel in rows["channel"].unique():
        mine = (rows["channel"] == channel).to_numpy()
        consent = flags[settings.channel_consent.get(channel, "do_not_contact")].to_numpy()[mine]
        field = flags[settings.channel_contact_field.get(channel, "customer_id")].to_numpy()[mine]
        ok[mine] = ((consent == True) & (flags["do_not_contact"].to_numpy()[mine] == False)  # noqa: E712
                    & pd.notna(field) & (pd.Series(field).astype(str).str.strip() != "").to_numpy())
    return rows[~ok]


def holdout_table(sizes: dict[str, Holdout]) -> pd.DataFrame:
    """:func:`holdouts` as a table, one row per channel."""
    return pd.DataFrame([{"channel": ch, "contacts": h.n, "control": h.control,
                          "control_share": h.control / h.n if h.n else 0.0, "uplift": h.uplift,
                          "base_rate": h.base_rate, "power": h.power, "capped": h.capped}
                         for ch, h in sizes.items()]).set_index("channel")


def full_cost(candidates: pd.DataFrame) -> float:
    """What contacting every customer with a profitable allowed row would cost, each through their
    best row (highest expected net margin): the spend of a plan without a budget or capacities."""
    rows = candidates[candidates["allowed"]].assign(net=net_value)
    rows = rows[rows["net"] > 0].sort_values("net", ascending=False, kind="stable").drop_duplicates("customer_id")
    return float(rows["cost"].sum())


def plot_response_against_uplift(candidates: pd.DataFrame, channel: str, ax=None):
    """Each allowed customer's P(buy | contacted) against their estimated uplift on ``channel``
    (one point per customer: their best offer, as in :func:`targeting_by_channel`), with the
    zero-uplift line: who buys is not who buys because of
    the contact. Returns ``ax``."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    rows = candidates[(candidates["channel"] == channel) & candidates["allowed"]].assign(net=net_value)
    rows = rows.sort_values("net", ascending=False, kind="stable").drop_duplicates("customer_id")  # best offer
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    negative = rows["uplift"] < 0
    ax.scatter(rows.loc[~negative, "p_response"], rows.loc[~negative, "uplift"], s=6, alpha=0.4, color="C0",
               label="uplift above zero")
    ax.scatter(rows.loc[negative, "p_response"], rows.loc[negative, "uplift"], s=6, alpha=0.6, color="C3",
               label="sleeping dogs (uplift below zero)")
    ax.axhline(0, color="0.4", lw=0.8)
    dogs, others = rows.loc[negative, "p_response"].median(), rows.loc[~negative, "p_response"].median()
    who = ("they are mostly customers unlikely to buy anyway" if dogs < others
           else "a response model would rank many of them high")
    name = channel_name(channel)
    title = (f"{name[:1].upper() + name[1:]}: {int(negative.sum()):,} reachable customers ({negative.mean():.0%}) would buy less if "
             f"contacted; {who}")
    return plots.finish(ax, title, x="P(buy | contacted)", y="estimated uplift", xunit="rate", yunit="rate",
                        truncated=False)


def channel_test(candidates: pd.DataFrame, chosen: pd.DataFrame, channel: str, size: int) -> pd.DataFrame:
    """Up to ``size`` contacts on ``channel`` that test it, for customers the plan (``chosen``)
    does not contact: each such customer's allowed row on the channel with the highest expected
    incremental margin, the highest first; only rows with a positive expected incremental margin
    (never an estimated sleeping dog), so the test may come out smaller.

    A channel without history runs on an assumed uplift (``Settings.assumed_uplift``); a plan
    that never uses it never learns whether the assumption holds. These rows are a deliberate
    test, paid from a test budget, whose control group lets notebook 09 measure the channel.
    """
    rows = candidates[(candidates["channel"] == channel) & candidates["allowed"] & (candidates["expected_margin"] > 0)
                      & ~candidates["customer_id"].isin(chosen["customer_id"])]
    rows = rows.sort_values(["expected_margin", "customer_id"], ascending=[False, True], kind="stable")
    return rows.drop_duplicates("customer_id").head(max(int(size), 0)).sort_values(["customer_id", "offer"])
