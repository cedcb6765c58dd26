"""The ``crm`` command line: one sub-command per step of the cycle.

    crm sample --customers 20000 --seed 42 --out data     # simulate the operational systems
    crm collect --data data                               # raw exports -> staging tables
    crm integrate                                         # staging -> single customer view
    crm notebooks --out reports/workbook                  # run the numbered notebooks
    crm forget 1234                                       # erase one person on request

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
    from crm_helpers.reports import NotebookFailed
    from crm_helpers.warehouse import WarehouseBusy, WarehouseMissing

    return (CommandError, config.ConfigError, config.WorkbookNotFound, SourceError, WarehouseMissing,
            WarehouseBusy, ContractFailed, NotebookFailed, UnknownCustomer, typer.TyperException)


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
    con = wh.connect(warehouse, read_only=True)
    try:
        missing = sorted(set(STAGING_TABLES) - set(con.list_tables()))
    finally:
        con.disconnect()
    if missing:
        raise wh.WarehouseMissing(f"{warehouse} has no staging tables ({', '.join(missing)}): "
                               "run `crm collect` first")


@app.command()
def sample(customers: str = typer.Option("default", help="Number of people, or 'small' / 'default'."),
           seed: int = typer.Option(config.DEFAULT_SEED, help="Random seed: same seed, same files."),
           out: Optional[Path] = typer.Option(None, help="Folder to write raw/, truth/ and sources.yml into "
                                                          "(default: the data folder; created if missing).")):
    """Generate the seeded sample world: raw exports of every source plus the ground truth."""
    from crm_helpers.sample import generate

    summary = generate(out or config.data_dir(), customers=number_of_people(customers), seed=seed, progress=True)
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


if __name__ == "__main__":
    app()
