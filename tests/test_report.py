"""The periodic report: ``crm report`` on the small world, its numbers, its index, its failures, its page.

One set of report runs (two months as a parallel backfill, one quarter, one filtered month) is
made once for the module and shared by the assertions; the failure test works on a copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import nbformat
import pytest

from crm_helpers import plots, reports
from crm_helpers import warehouse as wh
from crm_helpers.information import kpis
from crm_helpers.information import report as numbers

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(__file__).parent / "artifacts"
MONTHS, QUARTER = ["2025-10", "2025-11"], "2025-Q4"
pytestmark = pytest.mark.slow


def crm(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``crm <args>`` with this checkout's package."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_DATA_DIR", "CRM_WAREHOUSE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("MPLBACKEND", "Agg")
    return subprocess.run([sys.executable, "-m", "crm_helpers.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def runs(small_warehouse, tmp_path_factory) -> Path:
    """The reports folder after a two-month backfill and a quarterly report, and a filtered one beside it."""
    out = tmp_path_factory.mktemp("reports")
    backfill = crm("report", "--from", MONTHS[0], "--to", MONTHS[1], "--warehouse", str(small_warehouse),
                   "--out", str(out))
    assert backfill.returncode == 0, backfill.stderr
    quarter = crm("report", "--period", QUARTER, "--granularity", "quarter", "--warehouse", str(small_warehouse),
                  "--out", str(out))
    assert quarter.returncode == 0, quarter.stderr
    return out


@pytest.fixture(scope="module")
def filtered(small_warehouse, tmp_path_factory) -> Path:
    """A month's report for one store region and one RFM segment."""
    out = tmp_path_factory.mktemp("filtered")
    result = crm("report", "--period", MONTHS[1], "--region", "London", "--segment", "Champions",
                 "--warehouse", str(small_warehouse), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out / f"{MONTHS[1]}_region-London_segment-Champions"


def figures(folder: Path) -> dict:
    return reports.headline_of(folder / "report.ipynb")


class Page(HTMLParser):
    """What a page loads and shows: the src/href of scripts, styles and images, and its visible text."""

    def __init__(self):
        super().__init__()
        self.loads, self.images, self.text, self._skip = [], 0, [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "link", "iframe", "source", "video", "audio"):
            self.loads += [attrs[k] for k in ("src", "href") if attrs.get(k)]
        self.images += tag == "img"
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def page(path: Path) -> Page:
    parsed = Page()
    parsed.feed(path.read_text(encoding="utf-8"))
    return parsed


# --- the numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("label, granularity", [(m, "month") for m in MONTHS] + [(QUARTER, "quarter")])
def test_each_report_records_the_kpis_of_its_period(runs, small_warehouse, label, granularity):
    recorded = figures(runs / label)
    table = kpis.kpi_table(small_warehouse, granularity).set_index("period")
    bounds = numbers.check_request(small_warehouse, [label], granularity)[0]
    assert recorded["period"] == label and recorded["organisation"] == "Sample Retail Ltd"
    assert recorded["currency"] == "GBP"
    for kpi, values in recorded["kpis"].items():
        for which, period in (("current", label), ("previous", bounds.previous),
                              ("year_earlier", bounds.year_earlier)):
            assert values[which] == pytest.approx(table.loc[period, kpi], rel=1e-12), (kpi, which)


def test_the_same_period_twice_gives_the_same_numbers(small_warehouse):
    bounds = numbers.check_request(small_warehouse, ["2025-11"], "month")[0]
    first, again = numbers.compute(small_warehouse, bounds), numbers.compute(small_warehouse, bounds)
    assert first.table.equals(again.table) and first.ranked.equals(again.ranked)
    assert first.cube.equals(again.cube) and first.quality.equals(again.quality)


def test_the_commentary_quotes_the_three_largest_movements(small_warehouse):
    bounds = numbers.check_request(small_warehouse, ["2025-11"], "month")[0]
    report = numbers.compute(small_warehouse, bounds)
    moves = numbers.movements(report.table, n=len(numbers.MOVEMENT_KPIS))
    assert moves["pct"].abs().is_monotonic_decreasing and len(report.moves) == 3
    plots.set_currency(wh.settings(small_warehouse))
    lines = numbers.commentary(report.moves, bounds)
    top = report.moves.iloc[0]
    assert lines[0].startswith(numbers.kpi_name(top.kpi).capitalize())
    assert f"{abs(top.pct):.1%}" in lines[0] and numbers.fmt(top.current, top.kpi) in lines[0]


def test_filters_keep_the_region_and_the_segment(filtered, small_warehouse):
    """--region is the store region of the sale, --segment the RFM segment at the period's end."""
    recorded = figures(filtered)
    assert recorded["slice"] == "region London, segment Champions"
    bounds = numbers.check_request(small_warehouse, ["2025-11"], "month")[0]
    champions = numbers.segments_at(small_warehouse, bounds.end).query("segment == 'Champions'")
    table = kpis.kpi_table(small_warehouse, "month", customer_attributes=champions,
                           where={"store_region": "London", "segment": "Champions"}).set_index("period")
    assert recorded["kpis"]["revenue"]["current"] == pytest.approx(table.loc["2025-11", "revenue"])
    html = (filtered / "report.html").read_text(encoding="utf-8")
    assert "region London, segment Champions" in html and "Scotland" not in html


def charts(folder: Path) -> list[str]:
    """The charts of an executed report (PNG, base64)."""
    cells = nbformat.read(folder / "report.ipynb", as_version=4).cells
    return [o["data"]["image/png"] for c in cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]


def test_a_backfill_in_one_warm_kernel_gives_the_reports_of_fresh_kernels(runs, small_warehouse, tmp_path):
    """--workers 1 runs both months in one kernel, reset between them: the same figures, charts and
    page, byte for byte (no random id: the same period on the same data gives the same report)."""
    result = crm("report", "--from", MONTHS[0], "--to", MONTHS[1], "--workers", "1",
                 "--warehouse", str(small_warehouse), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for label in MONTHS:
        assert figures(tmp_path / label) == figures(runs / label)
        assert charts(tmp_path / label) == charts(runs / label) and len(charts(runs / label)) >= 4
        assert (tmp_path / label / "report.html").read_bytes() == (runs / label / "report.html").read_bytes()
        first = next(c for c in nbformat.read(tmp_path / label / "report.ipynb", as_version=4).cells
                     if c.cell_type == "code")
        assert first.execution_count == 1


# --- the index ----------------------------------------------------------------------------------

def test_the_index_lists_every_period_with_figures_from_the_reports(runs):
    index = (runs / "index.html").read_text(encoding="utf-8")
    for label in [*MONTHS, QUARTER]:
        assert f"href='{label}/report.html'" in index
        revenue = figures(runs / label)["kpis"]["revenue"]["current"]
        assert f"£{revenue:,.0f}" in index
    assert "class='failed'" not in index
    assert not [p for p in page(runs / "index.html").loads if p.startswith(("http:", "https:", "//"))]


# --- failures -------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, says", [
    (["--period", "2025-13"], "month must be in 1..12"),
    (["--period", "2025-Q5", "--granularity", "quarter"], "not a quarter label"),
    (["--period", "2021-06"], "outside the data"),
    (["--from", "2026-02", "--to", "2026-03"], "outside the data"),
    (["--period", "2025-11", "--granularity", "week"], "granularity must be one of"),
    (["--period", "2025-11", "--region", "Atlantis"], "no such store region"),
    (["--period", "2025-11", "--segment", "Whales"], "no such RFM segment"),
])
def test_a_bad_request_is_refused_before_a_kernel_starts(small_warehouse, tmp_path, monkeypatch, capsys,
                                                         args, says):
    import papermill

    from crm_helpers.cli import app

    def no_kernel(*_, **__):
        raise AssertionError("papermill was called")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        app(["report", *args, "--warehouse", str(small_warehouse), "--out", str(tmp_path / "out")], prog_name="crm")
    assert time.monotonic() - started < 2
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and says in err[0], err
    assert not (tmp_path / "out").exists()


def failing_notebook(path: Path) -> Path:
    """A report notebook with the real one's parameters that stops with an error."""
    nb = nbformat.read(reports.report_notebook(), as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    nb.cells = [params, nbformat.v4.new_code_cell("raise RuntimeError('the warehouse went away')")]
    nbformat.write(nb, path)
    return path


def test_a_failed_run_keeps_the_earlier_report_and_exits_non_zero(runs, small_warehouse, tmp_path):
    out = tmp_path / "reports"
    shutil.copytree(runs, out)
    good = (out / "2025-11" / "report.html").read_bytes()
    result = crm("report", "--period", "2025-11", "--warehouse", str(small_warehouse), "--out", str(out),
                 "--notebook", str(failing_notebook(tmp_path / "broken.ipynb")))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("error: 2025-11: ") and "RuntimeError: the warehouse went away" in err
    folder = out / "2025-11"
    assert (folder / "report.html").read_bytes() == good  # the previous good report, untouched
    assert not list(folder.glob("*.last-good.*"))
    assert "the warehouse went away" in (folder / "report.failed.ipynb").read_text(encoding="utf-8")
    assert not list(folder.glob("*.running.*"))
    index = (out / "index.html").read_text(encoding="utf-8")
    row = next(line for line in index.splitlines() if "2025-11/" in line)
    assert "class='failed'" in row and "2025-11/report.html" in row
    assert "class='failed'" not in next(line for line in index.splitlines() if "2025-10/" in line)


def test_a_period_without_purchases_fails_with_one_reason(small_warehouse):
    """A slice with no purchase in the period: one line saying so, not an empty report."""
    bounds = numbers.check_request(small_warehouse, ["2025-11"], "month")[0]
    segments = numbers.segments_at(small_warehouse, bounds.end)
    active = kpis.kpi_table(small_warehouse, "month", by="segment", customer_attributes=segments,
                            start="2025-11", end="2025-11")
    quiet = sorted(set(numbers.rfm.RFM_SEGMENT_GRID) - set(active.loc[active.active_customers > 0, "segment"]))
    assert quiet, "every segment bought in 2025-11"  # "Hibernating" customers have not, by definition
    with pytest.raises(numbers.ReportRefused, match=r"^2025-11 \(segment .*\): no purchase by an identified"):
        numbers.compute(small_warehouse, bounds, numbers.Slice(segment=quiet[0]))


# --- the page -------------------------------------------------------------------------------------

def personal_values(warehouse: Path) -> dict[str, set[str]]:
    """Names, e-mails, phones and postcodes as the raw files gave them (the staged customer records)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("""SELECT coalesce(full_name, concat_ws(' ', first_name, last_name)), email, phone,
                              postcode FROM stg_customer""").fetchall()
    found = {"name": set(), "email": set(), "phone": set(), "postcode": set()}
    for name, email, phone, postcode in rows:
        if name and len(name.split()) >= 2:
            found["name"].add(name.strip())
        if email:
            found["email"].add(email.strip().lower())
        if phone and len(re.sub(r"\D", "", phone)) >= 7:
            found["phone"].add(re.sub(r"\D", "", phone))
        if postcode and len(postcode.strip()) >= 5:
            found["postcode"].add(postcode.strip().upper())
    return found


def test_no_personal_data_in_any_report(runs, filtered, small_warehouse):
    personal = personal_values(small_warehouse)
    assert all(len(v) > 100 for v in personal.values()), {k: len(v) for k, v in personal.items()}
    for html in [*runs.glob("*/report.html"), filtered / "report.html", runs / "index.html"]:
        raw = html.read_text(encoding="utf-8")
        text = " ".join(page(html).text)
        digits = re.sub(r"\D", "", text)
        assert not [n for n in personal["name"] if n in text], html
        assert not [e for e in personal["email"] if e in raw.lower()], html
        assert not [p for p in personal["phone"] if p in digits], html
        assert not [p for p in personal["postcode"] if re.search(rf"\b{re.escape(p)}\b", text.upper())], html


def test_the_page_has_no_code_and_loads_nothing_from_the_network(runs):
    for html in runs.glob("*/report.html"):
        parsed, raw = page(html), html.read_text(encoding="utf-8")
        assert not [p for p in parsed.loads if not p.startswith("data:")], (html, parsed.loads)
        assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", raw), html
        assert "report.compute(" not in raw and "hl-ipython3" not in raw
        assert "Sample Retail Ltd: report for" in raw and "£" in raw
        assert parsed.images >= 3


def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (skip when that is impossible)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and apt-get is not available to install it (as root)")
    def install():
        return subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                              capture_output=True, text=True, timeout=900, check=False)
    result = install()
    if result.returncode != 0:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, check=False)
        result = install()
    if result.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"apt-get could not install chromium: {result.stderr.strip().splitlines()[-1:]}")
    return shutil.which("chromium")


def test_the_report_renders_in_a_browser_with_its_charts(runs):
    import numpy as np
    from PIL import Image

    browser = chromium()
    html = runs / "2025-11" / "report.html"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_2025-11.png"
    shot.unlink(missing_ok=True)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    subprocess.run([browser, *flags, "--window-size=1200,4000", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=180, check=True)
    dom = subprocess.run([browser, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True,
                         timeout=180, check=True).stdout
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10, "the screenshot is blank"
    images = re.findall(r"<img[^>]*src=\"data:image/png;base64,", dom)
    assert len(images) >= 3, "the charts are missing"
    executed = nbformat.read(runs / "2025-11" / "report.ipynb", as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", [])
              if o.output_type == "error" or (o.output_type == "stream" and o.name == "stderr")]
    assert not errors, errors
    assert not re.search(r"Traceback|data-mime-type=\"application/vnd\.jupyter\.(stderr|error)", dom)


def test_concentration_counts_the_active_customers_of_the_kpis(small_warehouse):
    bounds = numbers.check_request(small_warehouse, ["2025-Q4"], "quarter")[0]
    report = numbers.compute(small_warehouse, bounds)
    assert len(report.ranked) == report.table.loc["active_customers", "current"]
    assert report.ranked["customer_id"].is_unique and report.ranked["revenue"].is_monotonic_decreasing


def test_the_concentration_sentence_quotes_the_kpi(small_warehouse):
    bounds = numbers.check_request(small_warehouse, ["2025-11"], "month")[0]
    table = numbers.compute(small_warehouse, bounds).table
    plots.set_currency(wh.settings(small_warehouse))
    sentence = numbers.concentration_words(table, bounds)
    assert numbers.display.fmt(table.loc["top20_revenue_share", "current"], "rate") in sentence
    assert f"{table.loc['active_customers', 'current']:,.0f} customers bought" in sentence
