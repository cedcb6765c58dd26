"""The ``crm`` command line: one sub-command per step of the cycle.

    crm sample --customers 20000 --seed 42 --out data     # simulate the operational systems
    crm collect --data data                               # raw exports -> staging tables
    crm integrate                                         # staging -> single customer view
    crm notebooks --out reports/workbook                  # run the numbered notebooks
    crm report --period 2025-11                           # the periodic report of one month
    crm forget 1234                                       # erase one person on request
    crm play-forward --campaign P01 --start 2026-01-05    # the sample world answers a recorded plan

Paths default to the workbook's folders (:mod:`crm_helpers.config`). A mistake (a bad option
value, a missing folder, a step run before the one it needs, a broken ``sources.yml``) ends in
one ``error:`` line on stderr and exit code 2, never a traceback. ``collect`` exits with 1 when
it rejected a file (the others are loaded).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from crm_helpers import config


class CommandError(Exception):
    """A command given what it cannot use: a bad option value, a missing folder, nothing to run."""


def user_errors() -> tuple[type[Exception], ...]:
    """What an analyst can get wrong; anything else is a bug in the workbook and keeps its traceback.

    Imported only when something failed, so that ``crm --help`` starts without pandas and Ibis.
    ``typer.TyperException`` covers typer's own: an unknown command or option, a value of the wrong type.
    """
    from crm_helpers.data.erasure import UnknownCustomer
    from crm_helpers.data.sources import SourceError
    from crm_helpers.information.contracts import ContractFailed
    from crm_helpers.information.report_request import ReportRefused
    from crm_helpers.reports import NotebookFailed
    from crm_helpers.warehouse import WarehouseBusy, WarehouseMissing

    return (CommandError, config.ConfigError, config.WorkbookNotFound, SourceError, WarehouseMissing,
            WarehouseBusy, ContractFailed, NotebookFailed, UnknownCustomer, ReportRefused,
            typer.TyperException)


class Workbook(typer.Typer):
    """A typer app whose every user mistake ends in one ``error:`` line on stderr and exit code 2."""

    def __call__(self, *args, **kwargs):
        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except user_errors() as err:
            message = err.format_message() if isinstance(err, typer.TyperException) else str(err)
            typer.secho(f"error: {message}", fg="red", err=True)
            code = 2
        sys.exit(code or 0)


app = Workbook(add_completion=False)

DataOpt = typer.Option(None, "--data", help="Folder with raw/ and sources.yml (default: $CRM_DATA_DIR, "
                                            "else data/ in the workbook's folder or the current one).")
WarehouseOpt = typer.Option(None, "--warehouse", help="DuckDB warehouse file (default: $CRM_WAREHOUSE or "
                                                      "<data>/warehouse.duckdb).")


@app.callback(invoke_without_command=True)
def overview(ctx: typer.Context):
    """Analytical CRM workbook: collect, integrate, analyse, act, measure."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())


def existing_data_dir(data: Optional[Path]) -> Path:
    """The data folder (``--data``, else the default); a folder that does not exist is an error."""
    folder = Path(data) if data is not None else config.data_dir()
    if not folder.is_dir():
        raise CommandError(f"data folder {folder} does not exist: give another with --data, "
                           f"or simulate one with `crm sample --out {folder}`")
    return folder.resolve()


def number_of_people(customers: str) -> int:
    """``--customers``: a positive whole number, or a named size (``small``, ``default``)."""
    n = config.SAMPLE_SIZES.get(customers) or (int(customers) if customers.isdigit() else 0)
    if n < 1:
        raise CommandError(f"--customers {customers!r}: expected a positive whole number or one of "
                           f"{', '.join(config.SAMPLE_SIZES)}")
    return n


def require_staging(warehouse: Path) -> None:
    """Raise ``WarehouseMissing`` unless ``collect`` has built the warehouse's staging tables."""
    from crm_helpers import warehouse as wh
    from crm_helpers.data.sources import STAGING_TABLES

    if not Path(warehouse).exists():
        raise wh.WarehouseMissing(f"no warehouse at {warehouse}: run `crm collect` first")
    with wh.reading(warehouse) as con:
        missing = sorted(set(STAGING_TABLES) - set(con.list_tables()))
    if missing:
        raise wh.WarehouseMissing(f"{warehouse} has no staging tables ({', '.join(missing)}): "
                               "run `crm collect` first")


@app.command()
def sample(customers: str = typer.Option("default", help="Number of people, or 'small' / 'default'."),
           seed: int = typer.Option(config.DEFAULT_SEED, help="Random seed: same seed, same files."),
           out: Optional[Path] = typer.Option(None, help="Folder to write raw/, truth/ and sources.yml into "
                                                          "(default: the data folder; created if missing)."),
           no_seasonality: bool = typer.Option(False, "--no-seasonality",
                                               help="A flat purchase intensity: no seasonality, shocks or Easter.")):
    """Generate the seeded sample world: raw exports of every source plus the ground truth."""
    from crm_helpers.sample import generate

    summary = generate(out or config.data_dir(), customers=number_of_people(customers), seed=seed, progress=True,
                       seasonality=0.0 if no_seasonality else 1.0)
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
def collect(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
            sources: Optional[Path] = typer.Option(None, help="Source declarations (default: <data>/sources.yml)."),
            prune: bool = typer.Option(False, "--prune", help="Withdraw the rows of files no longer in raw/ "
                                                              "(default: keep them and say so).")):
    """Load every declared source file into the warehouse's staging tables.

    Prints what was loaded, then a summary; a file that cannot be read is rejected (one line
    naming source, file and reason, on stderr) and the others still load. Exit code 1 when a
    file was rejected, 2 for a mistake in the command or in sources.yml.
    """
    from crm_helpers.data import collect as collect_mod

    data_dir = existing_data_dir(data)
    audit = collect_mod.collect(data_dir, warehouse or config.warehouse_path(data_dir),
                                sources_file=sources, progress=True, prune=prune)
    changed = audit[audit.status.isin(["loaded", "replaced"])]
    shown = ["source", "file", "status", "rows_read", "rows_loaded", "rows_quarantined", "rows_erased"]
    typer.echo(changed[shown].to_string(index=False) if len(changed) else "nothing new to load")
    for line in collect_mod.summary(audit):
        problem = line.startswith(("rejected", "warning"))
        typer.secho(line, err=problem, fg="red" if line.startswith("rejected") else None)
    if (audit.status == "rejected").any():
        raise typer.Exit(1)


@app.command()
def integrate(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
              threshold: Optional[float] = typer.Option(None, help="Match probability at which two records are one "
                                                                       "customer (default: the match_threshold setting).")):
    """Clean, resolve identities and build the single customer view and star schema."""
    from crm_helpers.information import integrate as integrate_mod

    wh = warehouse or config.warehouse_path(existing_data_dir(data) if data is not None else None)
    require_staging(wh)
    chosen = {} if threshold is None else {"threshold": threshold}
    summary = integrate_mod.integrate(wh, progress=True, **chosen)
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
def forget(customer_id: str = typer.Argument(..., help="The person's customer_id in dim_customer."),
           data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt):
    """Erase one person on request from staging, quarantine and the star schema, in one transaction.

    Their transactions are removed too; the erasure is logged in ``erasure_log`` with counts
    and salted hashes of their source records, never their personal data, and a later
    ``collect`` withholds their records. Their raw exports must be erased at the source.
    """
    from crm_helpers.data import erasure

    wh = warehouse or config.warehouse_path(existing_data_dir(data) if data is not None else None)
    require_staging(wh)
    typer.echo(erasure.erasure_summary(erasure.forget(wh, customer_id), customer_id.strip()))


@app.command()
def notebooks(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
              out: Optional[Path] = typer.Option(None, help="Folder for executed notebooks and HTML "
                                                            "(default: reports/workbook in the workbook's folder)."),
              only: Optional[str] = typer.Option(None, help="Run only notebooks whose name contains this.")):
    """Execute the numbered notebooks in order with papermill, each also exported to HTML without code.

    Each notebook gets the data folder and warehouse as papermill parameters, if it declares them.
    """
    from crm_helpers import reports

    books = [nb for nb in reports.numbered_notebooks() if only is None or only in nb.name]
    if not books:
        names = ", ".join(nb.stem for nb in reports.numbered_notebooks()) or "none"
        raise CommandError(f"--only {only!r}: no notebook's name contains it (notebooks: {names})")
    data_dir = existing_data_dir(data)
    parameters = {"data_dir": str(data_dir),
                  "warehouse": str(Path(warehouse or config.warehouse_path(data_dir)).resolve())}
    for book in books:
        typer.echo(f"wrote {reports.run_notebook(book, out or config.reports_dir() / 'workbook', parameters)}")


@app.command()
def report(period: Optional[str] = typer.Option(None, help="Reporting period: a month like 2025-11 or a quarter "
                                                            "like 2025-Q4 (default: the latest with data)."),
           start: Optional[str] = typer.Option(None, "--from", help="Backfill: first period (with --to)."),
           end: Optional[str] = typer.Option(None, "--to", help="Backfill: last period (with --from)."),
           granularity: str = typer.Option("month", help="month, quarter or year."),
           segment: Optional[str] = typer.Option(None, help="Only customers in this RFM segment (as of the "
                                                            "period's end), e.g. Champions."),
           region: Optional[str] = typer.Option(None, help="Only sales in this store region."),
           compare_with: Optional[str] = typer.Option(None, help="Compare with this period instead of the "
                                                                 "previous one (the year-earlier one stays)."),
           data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
           out: Optional[Path] = typer.Option(None, help="Reports folder (default: reports/ in the workbook's folder)."),
           notebook: Optional[Path] = typer.Option(None, help="Report notebook (default: "
                                                              "notebooks/reports/periodic_report.ipynb)."),
           workers: Optional[int] = typer.Option(None, help="Parallel worker processes for a backfill "
                                                           "(default: the number of CPU cores).")):
    """Write the periodic report: reports/<period>/report.ipynb (executed) and report.html, and reports/index.html.

    Every period and filter is checked before a notebook kernel starts. A backfill (--from/--to)
    runs the periods in parallel worker processes, a progress bar per period. A failed period
    keeps its last good report untouched, leaves report.failed.ipynb beside it, is marked in
    the index, and makes the command exit non-zero with one line per failure.
    """
    from crm_helpers import reports
    from crm_helpers.information import report_request as request

    wh_path = Path(warehouse or config.warehouse_path(existing_data_dir(data) if data is not None else None)).resolve()
    if (start is None) != (end is None):
        raise CommandError("--from and --to go together (a backfill from one period to another)")
    if start is not None and period is not None:
        raise CommandError("give either --period or --from/--to, not both")
    if start is not None:
        labels = request.period_range(start, end, granularity)
    else:
        labels = [period or request.latest_label(wh_path, granularity)]
    checked = request.check_request(wh_path, labels, granularity, region, segment)
    if compare_with is not None:
        request.check_request(wh_path, [compare_with], granularity)
    labels = [b.label for b in checked]
    out_dir = Path(out or config.reports_dir())
    parameters = {"granularity": granularity, "segment": segment, "region": region, "warehouse": str(wh_path),
                  "compare_with": compare_with}
    suffix = request.Slice(region, segment).suffix()
    failures = reports.run_reports(labels, out_dir, parameters, notebook, suffix, workers)
    typer.echo(f"index: {reports.build_index(out_dir)}")
    for label, error in failures.items():
        if error is None:
            typer.echo(f"wrote {out_dir / (label + suffix) / 'report.html'}")
    failed = {label: error for label, error in failures.items() if error}
    for label, error in list(failed.items())[:-1]:
        typer.secho(f"error: {label}: {error}", fg="red", err=True)
    if failed:
        label, error = list(failed.items())[-1]
        raise reports.NotebookFailed(f"{label}: {error}" if len(failed) == 1 else
                                     f"{label}: {error} ({len(failed)} of {len(labels)} periods failed)")


@app.command("play-forward")
def play_forward(campaign: str = typer.Option(..., help="Campaign id of a plan recorded in campaign_plan."),
                 start: str = typer.Option(..., help="First day of the campaign's response window (YYYY-MM-DD)."),
                 seed: int = typer.Option(0, help="Random seed of the drawn responses: same seed, same files."),
                 data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt):
    """Sample world only: play a recorded plan forward, writing the campaign platform's files.

    Each planned customer's response is drawn from their true uplift (the world's truth/), and
    campaigns/contacts_<id>.csv, responses_<id>.csv and the campaign's row in campaigns.csv are
    written into raw/. Then `crm collect` and `crm integrate` load them like any other export.
    """
    from datetime import date

    from crm_helpers.sample import playforward

    data_dir = existing_data_dir(data)
    wh = warehouse or config.warehouse_path(data_dir)
    require_staging(wh)
    if not (data_dir / "truth" / "people.csv").exists():
        raise CommandError(f"{data_dir} holds no sample-world truth/: only a simulated world can play a plan forward")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise CommandError(f"--start {start!r}: expected a date like 2026-01-05") from None
    try:
        files = playforward.play_forward(data_dir, wh, campaign, first, seed)
    except ValueError as err:
        raise CommandError(str(err)) from None
    for path in files:
        typer.echo(f"wrote {path}")
    typer.echo("next: crm collect, then crm integrate")


if __name__ == "__main__":
    app()
