"""The ``crm`` command line: where it looks for things, what it passes to notebooks, how it fails.

Every mistake an analyst can make on the command line ends in exactly one ``error:`` line on
stderr and exit code 2, never a traceback, and creates nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from crm_helpers import config, reports

ROOT = Path(__file__).resolve().parents[1]


def crm(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``crm <args>`` in ``cwd`` with this checkout's package and no path overrides."""
    env = {k: v for k, v in os.environ.items() if k not in ("CRM_DATA_DIR", "CRM_WAREHOUSE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "crm_helpers.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a failed command (asserting exit code 2 and no traceback)."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def outside(tmp_path, monkeypatch) -> Path:
    """An empty folder outside any workbook, as the current folder, without path overrides."""
    assert config.workbook_root(tmp_path) is None, "the temporary folder sits inside a workbook"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    monkeypatch.delenv("CRM_WAREHOUSE", raising=False)
    return tmp_path


# --- where the workbook looks for things -------------------------------------------------------

def test_defaults_resolve_from_the_workbook_root_found_above_the_current_folder(monkeypatch):
    monkeypatch.delenv("CRM_DATA_DIR", raising=False)
    monkeypatch.delenv("CRM_WAREHOUSE", raising=False)
    monkeypatch.chdir(ROOT / "crm_helpers" / "information")
    assert config.workbook_root() == ROOT
    assert config.data_dir() == ROOT / "data"
    assert config.warehouse_path() == ROOT / "data" / "warehouse.duckdb"
    assert config.reports_dir() == ROOT / "reports"
    assert (config.cdnow_dir() / "CDNOW_master.txt").is_file()
    assert [nb.name for nb in reports.numbered_notebooks()][:3] == [
        "01_collect.ipynb", "02_integrate.ipynb", "03_information.ipynb"]


def test_outside_a_workbook_defaults_are_the_current_folder_never_the_package(outside):
    assert config.data_dir() == outside / "data"
    assert config.warehouse_path() == outside / "data" / "warehouse.duckdb"
    assert config.reports_dir() == outside / "reports"
    with pytest.raises(config.WorkbookNotFound, match="holds notebooks/"):
        config.notebooks_dir()


def test_environment_variables_override_the_defaults(outside, monkeypatch):
    monkeypatch.setenv("CRM_DATA_DIR", str(outside / "elsewhere"))
    assert config.warehouse_path() == outside / "elsewhere" / "warehouse.duckdb"
    assert config.warehouse_path(outside / "given") == outside / "given" / "warehouse.duckdb"
    monkeypatch.setenv("CRM_WAREHOUSE", str(outside / "wh.duckdb"))
    assert config.warehouse_path() == config.warehouse_path(outside / "given") == outside / "wh.duckdb"


def test_notebooks_get_only_the_parameters_they_declare(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("warehouse = None  # None = the default", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print(warehouse, 'data_dir' in dir())")]
    nbformat.write(nb, tmp_path / "01_only_warehouse.ipynb")
    executed = reports.run_notebook(tmp_path / "01_only_warehouse.ipynb", tmp_path / "out",
                                    {"data_dir": "/some/data", "warehouse": "/some/wh.duckdb"})
    cells = nbformat.read(executed, as_version=4).cells
    injected = next(c for c in cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "warehouse = \"/some/wh.duckdb\"" in injected.source and "data_dir" not in injected.source
    assert cells[-1].outputs[0].text == "/some/wh.duckdb False\n"
    assert executed.with_suffix(".html").is_file()


# --- one error line, exit code 2 ----------------------------------------------------------------

@pytest.mark.parametrize("size", ["abc", "-5", "0"])
def test_sample_refuses_a_size_that_is_not_a_positive_number(outside, size):
    line = error_line(crm("sample", "--customers", size, "--out", "world", cwd=outside))
    assert f"--customers {size!r}" in line and "positive whole number" in line
    assert not (outside / "world").exists()


def test_a_value_of_the_wrong_type_is_one_line_too(outside):
    assert "--seed" in error_line(crm("sample", "--seed", "x", cwd=outside))
    assert "No such command 'bogus'" in error_line(crm("bogus", cwd=outside))


def test_integrate_before_collect_says_run_collect(outside):
    (outside / "data").mkdir()
    line = error_line(crm("integrate", cwd=outside))
    assert "no warehouse at" in line and "crm collect" in line
    assert not (outside / "data" / "warehouse.duckdb").exists(), "integrate created an empty warehouse"

    import duckdb

    duckdb.connect(str(outside / "empty.duckdb")).close()
    line = error_line(crm("integrate", "--warehouse", "empty.duckdb", cwd=outside))
    assert "has no staging tables" in line and "stg_customer" in line and "crm collect" in line


@pytest.mark.parametrize("command", ["collect", "integrate"])
def test_a_data_folder_that_does_not_exist_is_not_created(outside, command):
    line = error_line(crm(command, "--data", "nowhere", cwd=outside))
    assert "data folder nowhere does not exist" in line
    assert list(outside.iterdir()) == []


def test_notebooks_only_matching_nothing_fails(tmp_path):
    line = error_line(crm("notebooks", "--only", "zzz", "--out", str(tmp_path / "out"), cwd=ROOT))
    assert "--only 'zzz'" in line and "01_collect" in line
    assert not (tmp_path / "out").exists()


def test_notebooks_outside_a_workbook_fails_instead_of_running_nothing(outside):
    assert "holds notebooks/" in error_line(crm("notebooks", cwd=outside))


def test_a_yaml_syntax_error_names_file_line_and_column(outside):
    sources = outside / "data" / "sources.yml"
    (outside / "data" / "raw").mkdir(parents=True)
    sources.write_text("settings:\n  currency: GBP\nsources:\n  shop: [a, b\n  web: x\n", encoding="utf-8")
    line = error_line(crm("collect", cwd=outside))
    assert line.startswith(f"error: {sources}, line 5, column 6: YAML syntax error")
    assert not (outside / "data" / "warehouse.duckdb").exists()


def test_a_source_error_is_one_line(outside):
    (outside / "data" / "raw").mkdir(parents=True)
    (outside / "data" / "sources.yml").write_text("sources:\n  shop:\n    files: shop/*.csv\n", encoding="utf-8")
    line = error_line(crm("collect", cwd=outside))
    assert line.startswith("error: source 'shop'")
