"""Measuring campaigns against their control groups: what worked, by how much, and at what return.

For any campaign with contacts and responses in the warehouse (the past ones from
``fact_campaign_contact``; a planned one from ``campaign_plan`` once its responses arrived) the
treatment and control groups are compared:

- response rates and the **uplift** (treatment rate - control rate) with Newcombe's hybrid
  score interval for a difference of proportions
  (``statsmodels.stats.proportion.confint_proportions_2indep(..., method="newcomb")``);
- **incremental revenue and margin**: the difference in mean revenue (margin) per customer
  between the groups, times the customers contacted, with a normal (Welch) interval;
- **ROI** after contact costs: (incremental margin - contact cost) / contact cost;
- the same by channel and by segment (``customer_scores.segment`` when the warehouse has it).

Per-contact outcomes are built in the engine (contacts x purchase responses x order-line margin);
the one-row-per-contact table then comes to pandas for the intervals. :func:`write_results`
stores the results in ``campaign_results`` (one row per campaign x group), replacing a
campaign's earlier rows in one transaction.

Closing the loop, :func:`next_plan` rebuilds the next period's candidate table and solves it
twice, on the old assumptions and with each channel's uplift times its calibration factor
(``uplift.calibration``), so the notebook can show what the measurement changed.
"""

from __future__ import annotations

from datetime import date
from statistics import NormalDist
from pathlib import Path

import ibis
import numpy as np
import pandas as pd

from crm_helpers import warehouse as wh

TABLE = "campaign_results"
ALL = "all"
COLUMNS = {
    "campaign_id": "VARCHAR", "channel": "VARCHAR", "segment": "VARCHAR",
    "n_treatment": "BIGINT", "n_control": "BIGINT", "rate_treatment": "DOUBLE", "rate_control": "DOUBLE",
    "uplift": "DOUBLE", "uplift_low": "DOUBLE", "uplift_high": "DOUBLE",
    "incremental_revenue": "DOUBLE", "incremental_revenue_low": "DOUBLE", "incremental_revenue_high": "DOUBLE",
    "incremental_margin": "DOUBLE", "incremental_margin_low": "DOUBLE", "incremental_margin_high": "DOUBLE",
    "contact_cost": "DOUBLE", "roi": "DOUBLE", "measured_on": "DATE",
}


def _order_margins(con):
    """Gross amount and margin of each order (engine: order lines net of returns of the same order)."""
    lines = con.table("fact_order_line")
    return lines.group_by("order_id").aggregate(
        order_amount=lines.line_amount.sum().cast("float64"),
        order_margin=(lines.line_amount - lines.cost_amount).sum().cast("float64"))


def margin_rate(con) -> float:
    """The warehouse's overall margin share of sales (for responses whose order it does not hold)."""
    lines = con.table("fact_order_line")
    row = lines.aggregate(amount=lines.line_amount.sum().cast("float64"),
                          margin=(lines.line_amount - lines.cost_amount).sum().cast("float64")).to_pandas().iloc[0]
    return float(row.margin / row.amount) if row.amount else 0.0


def planned_contacts(con):
    """Contacts of planned campaigns not (yet) in ``fact_campaign_contact`` but with responses:
    the arms recorded in ``campaign_plan`` (engine expression; None without a plan)."""
    if "campaign_plan" not in con.list_tables():
        return None
    plan = con.table("campaign_plan")
    known = con.table("fact_campaign_contact").select("campaign_id").distinct()
    answered = con.table("fact_campaign_response").select("campaign_id").distinct()
    plan = plan.filter(plan.campaign_id.isin(answered.campaign_id) & ~plan.campaign_id.isin(known.campaign_id))
    return plan.select("campaign_id", "customer_id", "channel", treatment_group=plan.arm)


def contact_outcomes(con, campaigns=None, purchase: str = "purchase") -> pd.DataFrame:
    """One row per campaign x contacted customer: campaign_id, customer_id, arm (treatment or
    control), channel, bought (a purchase response in the window), revenue and margin of those
    purchases.

    Contacts come from ``fact_campaign_contact`` (and :func:`planned_contacts`); a customer
    listed twice in a campaign counts once, as treated if any listing was. A response's revenue
    is its value; its margin is its order's margin (``fact_order_line``), or its value times the
    overall margin rate when the order is not in the warehouse. ``purchase``: the response type
    that is a purchase. Built in the engine; returns pandas.
    """
    facts = con.table("fact_campaign_contact").select("campaign_id", "customer_id", "channel", "treatment_group")
    planned = planned_contacts(con)
    if planned is not None:
        facts = facts.union(planned.cast(facts.schema()))
    if campaigns is not None:
        facts = facts.filter(facts.campaign_id.isin(list(campaigns)))
    facts = facts.filter(facts.customer_id.notnull())
    contacts = facts.group_by(["campaign_id", "customer_id"]).aggregate(
        arm=facts.treatment_group.max(), channel=facts.channel.max())
    resp = con.table("fact_campaign_response")
    resp = resp.filter((resp.response_type == purchase) & resp.customer_id.notnull())
    orders = _order_margins(con)
    rate = margin_rate(con)
    resp = resp.left_join(orders, "order_id")
    resp = resp.mutate(value=resp.response_value.cast("float64").fill_null(0),
                       margin=ibis.coalesce(resp.order_margin * resp.response_value.cast("float64")
                                            / ibis.ifelse(resp.order_amount == 0, None, resp.order_amount),
                                            resp.response_value.cast("float64") * rate))
    per = resp.group_by(["campaign_id", "customer_id"]).aggregate(
        purchases=resp.count(), revenue=resp.value.sum(), margin=resp.margin.sum())
    out = contacts.left_join(per, ["campaign_id", "customer_id"]).select(
        "campaign_id", "customer_id", "arm", "channel",
        bought=per.purchases.fill_null(0) > 0, revenue=per.revenue.fill_null(0.0), margin=per.margin.fill_null(0.0))
    return out.to_pandas().sort_values(["campaign_id", "customer_id"], ignore_index=True)


def latest_segments(con) -> pd.Series:
    """customer_id -> segment from the latest ``customer_scores`` (empty when absent)."""
    if "customer_scores" not in con.list_tables():
        return pd.Series(dtype=object)
    scores = con.table("customer_scores")
    if "segment" not in scores.columns:
        return pd.Series(dtype=object)
    latest = scores.filter(scores.as_of == scores.as_of.max()).select("customer_id", "segment").to_pandas()
    return latest.drop_duplicates("customer_id").set_index("customer_id")["segment"].astype(str)


def uplift_interval(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's interval of p_t - p_c (NaN when a group is empty)."""
    if n_t == 0 or n_c == 0:
        return np.nan, np.nan
    from statsmodels.stats.proportion import confint_proportions_2indep  # 1 s to import: only when measuring

    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="newcomb", compare="diff", alpha=alpha)
    return float(low), float(high)


def incremental(values_t: np.ndarray, values_c: np.ndarray, n_contacted: int, alpha: float = 0.05):
    """Incremental total of a per-customer value for ``n_contacted`` treated customers:
    (mean_t - mean_c) x n, with a normal interval from Welch's standard error."""
    if len(values_t) < 2 or len(values_c) < 2:
        return np.nan, np.nan, np.nan
    diff = values_t.mean() - values_c.mean()
    se = np.sqrt(values_t.var(ddof=1) / len(values_t) + values_c.var(ddof=1) / len(values_c))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return diff * n_contacted, (diff - z * se) * n_contacted, (diff + z * se) * n_contacted


def measure_group(rows: pd.DataFrame, costs: dict[str, float], alpha: float = 0.05) -> dict:
    """Results of one group of contacts (rows of :func:`contact_outcomes`)."""
    t, c = rows[rows.arm == "treatment"], rows[rows.arm == "control"]
    n_t, n_c, x_t, x_c = len(t), len(c), int(t.bought.sum()), int(c.bought.sum())
    rate_t, rate_c = (x_t / n_t if n_t else np.nan), (x_c / n_c if n_c else np.nan)
    low, high = uplift_interval(x_t, n_t, x_c, n_c, alpha)
    rev = incremental(t.revenue.to_numpy(float), c.revenue.to_numpy(float), n_t, alpha)
    mar = incremental(t.margin.to_numpy(float), c.margin.to_numpy(float), n_t, alpha)
    cost = float(t.channel.map(costs).fillna(0).sum())
    return {"n_treatment": n_t, "n_control": n_c, "rate_treatment": rate_t, "rate_control": rate_c,
            "uplift": rate_t - rate_c, "uplift_low": low, "uplift_high": high,
            "incremental_revenue": rev[0], "incremental_revenue_low": rev[1], "incremental_revenue_high": rev[2],
            "incremental_margin": mar[0], "incremental_margin_low": mar[1], "incremental_margin_high": mar[2],
            "contact_cost": cost, "roi": (mar[0] - cost) / cost if cost else np.nan}


def measure(con, campaigns=None, costs: dict[str, float] | None = None, segments: pd.Series | None = None,
            alpha: float = 0.05, measured_on=None, purchase: str = "purchase") -> pd.DataFrame:
    """Measure campaigns against their control groups: one row per campaign x group.

    Groups: the whole campaign (channel and segment ``all``), each channel (segment ``all``) and
    each segment (channel ``all``; segments from ``segments``, default :func:`latest_segments`,
    customers without one in ``unknown``). campaigns: ids to measure (default: all with
    contacts); costs: per-contact cost by channel (default: the
    warehouse's ``settings.contact_costs``); alpha: 1 - the intervals' confidence. Columns as ``campaign_results``.
    """
    outcomes = contact_outcomes(con, campaigns, purchase)
    if costs is None:
        costs = wh.settings(con).contact_costs
    segments = latest_segments(con) if segments is None else segments
    outcomes["segment"] = outcomes.customer_id.map(segments).fillna("unknown") if len(segments) else "unknown"
    rows = []
    for cid, camp in outcomes.groupby("campaign_id", sort=True):
        groups = [(ALL, ALL, camp)]
        groups += [(ch, ALL, g) for ch, g in camp.groupby("channel", sort=True)]
        if len(segments):
            groups += [(ALL, seg, g) for seg, g in camp.groupby("segment", sort=True)]
        for channel, segment, g in groups:
            rows.append({"campaign_id": cid, "channel": channel, "segment": segment, **measure_group(g, costs, alpha)})
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "measured_on"])
    out["measured_on"] = pd.Timestamp(measured_on or date.today()).date()
    return out


def planned_campaigns(con) -> list[str]:
    """Campaign ids recorded in ``campaign_plan`` (empty without one)."""
    if "campaign_plan" not in con.list_tables():
        return []
    return sorted(con.table("campaign_plan").select("campaign_id").distinct().to_pandas().campaign_id)


def designed_effects(truth_dir) -> pd.Series:
    """Sample world only: each past campaign's designed effect, the contacted customers' mean
    true uplift (truth/campaign_effects.csv, weighted by the contacted)."""
    from crm_helpers import truth

    effects = truth.read_truth("campaign_effects", truth_dir)
    weighted = (effects.true_uplift * effects.contacted).groupby(effects.campaign_id).sum()
    return weighted / effects.groupby("campaign_id").contacted.sum()


def whole(results: pd.DataFrame) -> pd.DataFrame:
    """The whole-campaign rows of :func:`measure` (channel and segment ``all``), by campaign_id."""
    return results[(results.channel == ALL) & (results.segment == ALL)].set_index("campaign_id")


def write_results(warehouse: Path | str | None, results: pd.DataFrame) -> int:
    """Store ``results`` (from :func:`measure`) in ``campaign_results``, replacing the rows of the
    campaigns they hold in one transaction (a rerun never duplicates). ``warehouse``: its path or
    a writable connection. Returns the rows written."""
    own = warehouse is None or isinstance(warehouse, (str, Path))
    con = wh.connect(warehouse) if own else warehouse
    rows = results[list(COLUMNS)].copy()
    raw = con.con
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
        raw.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} ({columns})")
        raw.register("_results_in", rows)
        try:
            with wh.transaction(raw):
                ids = sorted(rows.campaign_id.unique())
                if ids:
                    raw.execute(f"DELETE FROM {TABLE} WHERE campaign_id IN ({', '.join('?' * len(ids))})", ids)
                names = ", ".join(COLUMNS)
                raw.execute(f"INSERT INTO {TABLE} ({names}) SELECT {names} FROM _results_in")
        finally:
            raw.unregister("_results_in")
    finally:
        if own:
            con.disconnect()
    return len(rows)


def read_results(con, campaigns=None) -> pd.DataFrame:
    """``campaign_results`` (optionally only some campaigns) as pandas; empty when absent."""
    if TABLE not in con.list_tables():
        return pd.DataFrame(columns=list(COLUMNS))
    table = con.table(TABLE)
    if campaigns is not None:
        table = table.filter(table.campaign_id.isin(list(campaigns)))
    return table.to_pandas().sort_values(["campaign_id", "channel", "segment"], ignore_index=True)


# --------------------------------------------------------------------------------------------
# Summaries across campaigns, the plan, and what the notebook shows
# --------------------------------------------------------------------------------------------

def pooled(results: pd.DataFrame, by: str, alpha: float = 0.05) -> pd.DataFrame:
    """Uplift pooled across campaigns for each value of ``by`` ("segment" or "channel"):
    the mean of the campaigns' uplifts weighted by their inverse variance (read off each Newcombe
    interval's width), with a normal interval. Rows of the other dimension's ``all`` only;
    customers without a segment (``unknown``) are left out."""
    other = "channel" if by == "segment" else "segment"
    rows = results[(results[other] == ALL) & (results[by] != ALL) & (results[by] != "unknown")]
    rows = rows.dropna(subset=["uplift_low", "uplift_high"])
    if rows.empty:
        return pd.DataFrame(columns=["campaigns", "n_treatment", "n_control", "uplift", "uplift_low", "uplift_high"],
                            index=pd.Index([], name=by))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    se = (rows.uplift_high - rows.uplift_low) / (2 * z)
    rows = rows.assign(weight=1 / se.clip(lower=1e-6) ** 2)
    out = rows.groupby(by).apply(lambda g: pd.Series({
        "campaigns": g.campaign_id.nunique(), "n_treatment": g.n_treatment.sum(), "n_control": g.n_control.sum(),
        "uplift": np.average(g.uplift, weights=g.weight), "se": 1 / np.sqrt(g.weight.sum())}), include_groups=False)
    out["uplift_low"], out["uplift_high"] = out.uplift - z * out.se, out.uplift + z * out.se
    return out.drop(columns="se").sort_values("uplift", ascending=False)


def covers(results: pd.DataFrame, designed: pd.Series) -> pd.Series:
    """Whether each whole-campaign interval holds ``designed`` (campaign_id -> effect)."""
    w = whole(results)
    d = designed.reindex(w.index)
    return (w.uplift_low <= d) & (d <= w.uplift_high)


def against_plan(con, results: pd.DataFrame, campaign_id: str) -> pd.DataFrame:
    """A planned campaign's measured uplift beside what the plan assumed, per channel: the
    treated customers' mean planned uplift (``campaign_plan.uplift``), the measured uplift and
    its interval, and the factor measured / planned that calibrates the next plan."""
    plan = con.table("campaign_plan")
    plan = plan.filter((plan.campaign_id == campaign_id) & (plan.arm == "treatment"))
    planned = plan.group_by("channel").aggregate(planned=plan.uplift.mean()).to_pandas().set_index("channel")
    got = results[(results.campaign_id == campaign_id) & (results.segment == ALL) & (results.channel != ALL)]
    out = got.set_index("channel")[["n_treatment", "n_control", "uplift", "uplift_low", "uplift_high"]].join(planned)
    out["factor"] = out.uplift / out.planned.where(out.planned.abs() > 0)
    return out


def calibrated(lift: pd.DataFrame, factors: dict[str, float]) -> pd.DataFrame:
    """Estimated uplift per customer (rows) and channel (columns) times each channel's calibration
    factor (``uplift.calibration``: measured over planned, shrunk); a channel without a factor is
    unchanged. Applied to the uncalibrated estimates, the channels the plan borrowed from, so a
    channel's factor multiplies exactly what its planned uplift was (a borrowed channel, such as
    calls, is not scaled twice through the channel it borrows from). Columns may also be
    (channel, offer) pairs: the factor is the channel's."""
    channels = lift.columns.get_level_values(0) if isinstance(lift.columns, pd.MultiIndex) else lift.columns
    return lift * np.array([float(factors.get(c, 1.0)) for c in channels])


def next_plan(con, as_of, factors: dict[str, float], settings=None, budget_share: float = 0.5,
              seed: int = 0, max_iter: int | None = None, method: str = "auto", progress: bool = False,
              variants: dict[str, dict[str, float]] | None = None) -> dict:
    """The next period's plan, re-optimised twice: on the old assumptions and calibrated by what was measured.

    As notebook 08 does: the uplift models are fitted on the campaign history (campaigns whose
    response window has closed by the last order day), ``campaigns.estimates`` scores every
    customer per channel (calls borrowing their assumed uplift), ``campaigns.candidates`` builds
    the candidate table as of ``as_of`` and ``optimise.optimise`` solves it under the settings'
    capacities and contact limit. The second table multiplies each channel's uplift by
    ``factors`` (:func:`calibrated`). Both plans get one budget: ``budget_share`` of what
    contacting every profitable row of the uncalibrated table would cost (notebook 08's rule), so
    they compete for the same money. ``max_iter``: boosting rounds (fewer: faster, same method).
    ``variants``: more named factor sets solved the same way (e.g. the unshrunk ratios).
    Returns {"budget", "factors", "candidates": {"assumed", "calibrated", *variants}, "plans": {same keys: Plan}}.
    """
    from crm_helpers.wisdom import campaigns, optimise, uplift

    con = wh.as_connection(con)
    settings = settings or wh.settings(con)
    history = uplift.campaign_history(con)
    model = uplift.fit(history, seed=seed, progress=progress, **({"max_iter": max_iter} if max_iter else {}))
    today = uplift.customer_features(con, uplift.as_of_default(con))
    lift, response = campaigns.estimates(model, today, settings.channels, None, settings.assumed_uplift)
    tables = {"assumed": campaigns.candidates(con, as_of, lift, response, settings)}
    for name, given in {"calibrated": factors, **(variants or {})}.items():
        tables[name] = campaigns.candidates(con, as_of, calibrated(lift, given), response, settings)
    budget = budget_share * campaigns.full_cost(tables["assumed"])
    plans = {name: optimise.optimise(table, budget, settings.channel_capacity, settings.max_contacts_per_customer,
                                     method=method) for name, table in tables.items()}
    return {"budget": budget, "factors": dict(factors), "candidates": tables, "plans": plans}


def plan_mix(plans: dict) -> pd.DataFrame:
    """Contacts per channel x offer (rows) in each plan (columns: the plans' names), zeros kept."""
    counts = {name: p.chosen.groupby(["channel", "offer"]).size() for name, p in plans.items()}
    return pd.DataFrame(counts).fillna(0).astype(int).rename_axis(["channel", "offer"])


def plan_summary(plans: dict, true_margin: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per plan: contacts per channel, spend, expected incremental margin and expected net
    margin (its own estimates), and, when given (the sample world), the true net margin."""
    rows = {}
    channels = sorted({c for p in plans.values() for c in p.chosen["channel"].unique()})
    for name, p in plans.items():
        chosen = p.chosen
        row = {f"{c}_contacts": int((chosen["channel"] == c).sum()) for c in channels}
        row |= {"contacts": len(chosen), "cost": float(chosen["cost"].sum()),
                "expected_margin": float(chosen["expected_margin"].sum()),
                "net_margin": float((chosen["expected_margin"] - chosen["cost"]).sum())}
        if true_margin is not None:
            row["true_net_margin"] = float(true_margin[name])
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("plan")


def calibration_plot(table: pd.DataFrame, true_factor: pd.Series | None = None, ax=None):
    """Per channel (rows of ``uplift.calibration_table``): the measured factor with its interval
    and the calibrated (shrunk) one with its own, against the assumption (1); ``true_factor``:
    optional true factors (sample truth) drawn as crosses. The title names the channel the
    shrinkage held back most."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.7 * len(table) + 1.8))
    y = np.arange(len(table))[::-1].astype(float)
    for shift, (mid, low, high, label) in zip((0.15, -0.15), (
            ("raw_factor", "raw_low", "raw_high", "measured / planned, 95% interval"),
            ("factor", "factor_low", "factor_high", "calibrated (shrunk), 95% interval"))):
        ax.errorbar(table[mid], y + shift, xerr=[table[mid] - table[low], table[high] - table[mid]], fmt="o",
                    capsize=3, label=label)
    if true_factor is not None:
        ax.scatter(true_factor.reindex(table.index).to_numpy(), y, marker="x", color="C3", zorder=3,
                   label="true / planned (sample truth)")
    ax.axvline(1, color="0.4", lw=1, ls="--", label="the assumption (1)")
    ax.set_yticks(y, table.index.astype(str))
    held = table.weight.idxmin()
    title = (f"{str(held).capitalize()}'s measured factor {table.raw_factor[held]:.2f} counts for {table.weight[held]:.0%}: "
             f"calibrated to {table.factor[held]:.2f}")
    return plots.finish(ax, title, x="Factor on the planned uplift", y="Channel", truncated=False)


def results_table(results: pd.DataFrame, names: dict[str, str] | None = None):
    """Whole-campaign results as a reader sees them: groups, response rates, uplift and interval."""
    from crm_helpers import display

    shown = whole(results).reset_index()
    if names:
        shown["campaign_id"] = shown.campaign_id.map(lambda c: f"{c} {names.get(c, '')}".strip())
    cols = ["n_treatment", "n_control", "rate_treatment", "rate_control", "uplift", "uplift_low", "uplift_high"]
    return display.table(shown, {c: "rate" for c in cols[2:]}, index="campaign_id", columns=cols,
                         names={"campaign_id": "Campaign", "n_treatment": "Treated", "n_control": "Control",
                                "rate_treatment": "Bought (treated)", "rate_control": "Bought (control)",
                                "uplift_low": "Uplift from", "uplift_high": "Uplift to"})


def roi_table(results: pd.DataFrame):
    """Whole-campaign money: incremental revenue and margin with intervals, contact cost, ROI."""
    from crm_helpers import display

    cols = ["incremental_revenue", "incremental_margin", "incremental_margin_low", "incremental_margin_high",
            "contact_cost", "roi"]
    shown = whole(results).reset_index()
    return display.table(shown, {**{c: "money" for c in cols[:-1]}, "roi": "number"}, index="campaign_id",
                         columns=cols, decimals={**{c: 0 for c in cols[:-1]}, "roi": 1},
                         names={"campaign_id": "Campaign", "incremental_margin_low": "Margin from",
                                "incremental_margin_high": "Margin to", "roi": "ROI (x contact cost)"})


def forest_plot(rows: pd.DataFrame, label: str, title: str, designed: pd.Series | None = None, ax=None):
    """Uplift with its interval per row (a forest plot) against zero; ``label``: the column naming
    each row; ``designed``: optional true effects (by the label) drawn as crosses."""
    import matplotlib.pyplot as plt

    from crm_helpers import plots

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    ax.errorbar(rows.uplift, y, xerr=[rows.uplift - rows.uplift_low, rows.uplift_high - rows.uplift],
                fmt="o", capsize=3, label="measured uplift, 95% interval")
    if designed is not None:
        ax.scatter(designed.reindex(rows[label]).to_numpy(), y, marker="x", color="C3", zorder=3,
                   label="designed effect (sample truth)")
    ax.axvline(0, color="0.4", lw=1)
    ax.set_yticks(y, rows[label].astype(str))
    return plots.finish(ax, title, x="Uplift in the chance of buying", xunit="rate", truncated=False)


# --------------------------------------------------------------------------------------------
# The periodic report's campaign section
# --------------------------------------------------------------------------------------------

def campaigns_ended(con, first, last) -> pd.DataFrame:
    """Campaigns whose response window ended in [first, last] (``dim_campaign``): campaign_id,
    campaign_name, channel, start_date, end_date, in end order."""
    camp = con.table("dim_campaign")
    first, last = pd.Timestamp(first).date(), pd.Timestamp(last).date()
    out = camp.filter((camp.end_date >= first) & (camp.end_date <= last)).to_pandas()
    return out.sort_values(["end_date", "campaign_id"], ignore_index=True)


def period_section(con, first, last, alpha: float = 0.05) -> pd.DataFrame | None:
    """The report's campaign section: whole-campaign results (uplift with its interval,
    incremental margin, contact cost, ROI) of the campaigns whose window ended in the period,
    measured now against their control groups (a light query: no model is fitted). None when no
    campaign ended in the period."""
    ended = campaigns_ended(con, first, last)
    if ended.empty:
        return None
    results = measure(con, campaigns=ended.campaign_id, alpha=alpha, segments=pd.Series(dtype=object))
    out = whole(results).join(ended.set_index("campaign_id")[["campaign_name", "end_date"]])
    return out.reset_index()


def report_section(warehouse, bounds) -> pd.DataFrame | None:
    """The periodic report's campaign section: :func:`period_section` for the report's period
    (``bounds``, a :class:`crm_helpers.periods.PeriodBounds`), read in one short visit to the
    warehouse. Self-contained, so the report can run it in a second process
    (:func:`crm_helpers.reports.in_background`) where statsmodels is already imported."""
    with wh.reading(warehouse) as con:
        return period_section(con, bounds.start, bounds.end)


def period_words(section: pd.DataFrame | None, label: str) -> str:
    """One paragraph on :func:`period_section` (or why it is empty)."""
    from crm_helpers import display

    if section is None or section.empty:
        return f"No campaign's response window ended in {label}."
    clear = section[section.uplift_low > 0]
    words = [f"{display.count_of(len(section), 'campaign')} ended in {label}"]
    if len(clear):
        words.append(f"{display.count_of(len(clear), 'campaign')} raised buying beyond doubt ("
                     + ", ".join(f"{r.campaign_name}: {display.fmt(r.uplift, 'rate')}" for r in clear.itertuples()) + ")")
    else:
        words.append("none raised buying beyond doubt: every uplift interval includes zero")
    paid = section.incremental_margin - section.contact_cost
    words.append(f"together they added {display.fmt(section.incremental_margin.sum(), 'money', 0)} of margin for "
                 f"{display.fmt(section.contact_cost.sum(), 'money', 0)} of contacts "
                 f"({display.fmt(paid.sum(), 'money', 0)} after costs)")
    return "; ".join(words) + "."


def period_table(section: pd.DataFrame):
    """:func:`period_section` as the report shows it."""
    from crm_helpers import display

    cols = ["n_treatment", "n_control", "uplift", "uplift_low", "uplift_high", "incremental_margin",
            "contact_cost", "roi"]
    return display.table(section, {"uplift": "rate", "uplift_low": "rate", "uplift_high": "rate",
                                   "incremental_margin": "money", "contact_cost": "money", "roi": "number"},
                         index="campaign_name", columns=cols, decimals={"incremental_margin": 0, "contact_cost": 0, "roi": 1},
                         names={"campaign_name": "Campaign", "n_treatment": "Treated", "n_control": "Control",
                                "uplift_low": "Uplift from", "uplift_high": "Uplift to", "roi": "ROI (x contact cost)"})
