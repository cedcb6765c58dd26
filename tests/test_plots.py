"""Money in charts and tables follows the settings' currency: no £ unless the settings say GBP."""

from __future__ import annotations

import pytest
from fixtures_star import star_warehouse  # noqa: F401

from crm_helpers import plots
from crm_helpers import warehouse as wh
from crm_helpers.config import Settings
from crm_helpers.information import kpis, olap


@pytest.fixture
def euros():
    before = plots.current_settings()
    yield plots.set_currency(Settings(currency="EUR", locale="fr_FR"))
    plots.set_currency(before)


def test_unit_labels_use_the_currency(euros):
    assert plots.unit_label(kpis.KPI_UNITS["aov"]) == "€ per order"
    assert plots.unit_label("customers") == "customers"
    assert plots.set_currency(Settings()) and plots.unit_label(kpis.KPI_UNITS["revenue"]) == "£"


def _texts(ax) -> str:
    ax.figure.canvas.draw()
    ticks = [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()]
    return " ".join([ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *ticks])


def test_charts_and_dashboard_in_euros(star_warehouse, euros):
    con = wh.connect(star_warehouse, read_only=True)
    trend = kpis.kpi_table(con, "month")
    cube = olap.Cube.from_warehouse(con).by("region").to_pandas()
    texts = _texts(plots.kpi_trend(trend, "revenue")) + _texts(plots.cube_bar(cube, "region"))
    assert "€" in texts and "£" not in texts
    html = plots.dashboard_table(kpis.kpi_dashboard(con, "2025-12")).to_html()
    assert "€" in html and "£" not in html


def test_dashboard_table_formats_each_unit(star_warehouse, euros):
    from crm_helpers import display

    dashboard = kpis.kpi_dashboard(wh.connect(star_warehouse, read_only=True), "2025-12")
    shown = plots.dashboard_table(dashboard).data
    assert shown.loc["Average order value", "Unit"] == "€ per order"
    row = dashboard.set_index("kpi").loc["retention_rate"]
    html = plots.dashboard_table(dashboard).to_html()
    points = display.fmt(abs(row["change"]) * 100, "number", 1)
    assert display.fmt(row["current"], "rate") in html and f"{points} pts" in html


def test_the_theme_is_seaborns_without_importing_seaborn():
    """workbook.mplstyle is seaborn's notebook/whitegrid/deep theme, so matplotlib-only charts look the same."""
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import to_hex

    def colours(rc):
        return [to_hex(c) for c in rc["axes.prop_cycle"].by_key()["color"]]

    with mpl.rc_context():
        plt.style.use(plots.THEME)
        ours = dict(mpl.rcParams)
    with mpl.rc_context():
        sns.set_theme(context="notebook", style="whitegrid", palette=plots.PALETTE)
        seaborns = dict(mpl.rcParams)
    assert colours(ours) == colours(seaborns) and to_hex(plots.CURRENT_COLOR) == colours(seaborns)[0]
    differ = {k for k in seaborns if k != "axes.prop_cycle" and ours[k] != seaborns[k]}
    assert differ == {"image.cmap"}, differ  # seaborn's own colour map: the heatmaps name theirs


def test_the_report_charts_need_no_seaborn():
    """Importing the plots and drawing the periodic report's charts leaves seaborn (and scipy) unimported."""
    import os
    import subprocess
    import sys

    code = ("import sys, pandas as pd; from crm_helpers import plots; plots.setup_notebook(); "
            "t = pd.DataFrame({'period': [f'2025-{m:02d}' for m in range(1, 13)], 'revenue': range(12), "
            "'new_customers': range(12), 'returning_customers': range(12), 'lapsed_customers': range(12)}); "
            "plots.kpi_trends(t, ['revenue', 'new_customers'], lag=1).savefig('/dev/null', format='png'); "
            "plots.customer_flows(t.set_index('period')); "
            "print(sorted(m for m in ('seaborn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout.strip() == "[]", out.stderr
