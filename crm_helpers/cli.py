"""The ``crm`` command line: one sub-command per step of the cycle.

    crm sample --customers 20000 --seed 42 --out data     # simulate the operational systems
    crm collect --data data                               # raw exports -> staging tables
    crm integrate                                         # staging -> single customer view
    crm notebooks --out reports/workbook                  # run the numbered notebooks
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from crm_helpers import config

app = typer.Typer(help="Analytical CRM workbook: collect, integrate, analyse, act, measure.",
                  no_args_is_help=True, add_completion=False)

DataOpt = typer.Option(None, "--data", help="Folder with raw/, sources.yml (default: $CRM_DATA_DIR or data/).")
WarehouseOpt = typer.Option(None, "--warehouse", help="DuckDB warehouse file (default: $CRM_WAREHOUSE or <data>/warehouse.duckdb).")


def _paths(data: Optional[Path], warehouse: Optional[Path]) -> tuple[Path, Path]:
    """Resolve the data folder and warehouse, exporting them so notebooks see the same ones."""
    if data is not None:
        os.environ["CRM_DATA_DIR"] = str(Path(data).resolve())
    if warehouse is not None:
        os.environ["CRM_WAREHOUSE"] = str(Path(warehouse).resolve())
    return config.data_dir(), config.warehouse_path()


@app.command()
def sample(customers: str = typer.Option("default", help="Number of people, or 'small' / 'default'."),
           seed: int = typer.Option(config.DEFAULT_SEED, help="Random seed: same seed, same files."),
           out: Optional[Path] = typer.Option(None, help="Folder to write raw/, truth/ and sources.yml into "
                                                          "(default: $CRM_DATA_DIR or data/).")):
    """Generate the seeded sample world: raw exports of every source plus the ground truth."""
    from crm_helpers.sample import generate

    n = config.SAMPLE_SIZES.get(customers) or int(customers)
    summary = generate(out or config.data_dir(), customers=n, seed=seed, progress=True)
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
def collect(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
            sources: Optional[Path] = typer.Option(None, help="Source declarations (default: <data>/sources.yml).")):
    """Load every declared source file into the warehouse's staging tables."""
    from crm_helpers.data import collect as collect_mod

    data_dir, wh = _paths(data, warehouse)
    try:
        audit = collect_mod.collect(data_dir, wh, sources_file=sources, progress=True)
    except collect_mod.SourceError as err:
        typer.secho(f"error: {err}", fg="red", err=True)
        raise typer.Exit(2) from err
    typer.echo(audit.to_string(index=False) if len(audit) else "nothing new to load")


@app.command()
def integrate(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
              threshold: Optional[float] = typer.Option(None, help="Match probability at which two records are one "
                                                                       "customer (default: the match_threshold setting).")):
    """Clean, resolve identities and build the single customer view and star schema."""
    from crm_helpers.information import integrate as integrate_mod

    _, wh = _paths(data, warehouse)
    summary = integrate_mod.integrate(wh, threshold=threshold, progress=True)
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
def notebooks(data: Optional[Path] = DataOpt, warehouse: Optional[Path] = WarehouseOpt,
              out: Path = typer.Option(config.REPORTS_DIR / "workbook", help="Folder for executed notebooks and HTML."),
              only: Optional[str] = typer.Option(None, help="Run only notebooks whose name contains this.")):
    """Execute the numbered notebooks in order with papermill, each also exported to HTML without code."""
    from crm_helpers.reports import run_notebooks

    _paths(data, warehouse)
    for path in run_notebooks(out, only=only):
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
