"""JupyterLab opening a notebook must not rewrite it: each ships the metadata Jupyter would write."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from crm_helpers.reports import KERNELSPEC, LANGUAGE_INFO, normalise_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks_to_check():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_as_jupyter_writes_it(path):
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert text == nbformat.writes(nb) + "\n", "not in nbformat.writes form: run reports.normalise_notebook"
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec == KERNELSPEC
    assert nb.metadata.language_info == LANGUAGE_INFO
    ids = [cell.get("id") for cell in nb.cells]
    assert all(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_normalising_a_committed_notebook_changes_nothing(path, tmp_path):
    copy = shutil.copy(path, tmp_path / path.name)
    assert normalise_notebook(copy) is False
    assert Path(copy).read_bytes() == path.read_bytes()


def test_normalising_keeps_cell_sources_and_fills_metadata(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"),
                                         nbformat.v4.new_code_cell("x = 1")])
    nb.nbformat_minor = 4
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for cell in nb.cells:
        cell.pop("id", None)
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(nb, version=4), encoding="utf-8")
    assert normalise_notebook(path) is True
    again = nbformat.read(path, as_version=4)
    assert [c.source for c in again.cells] == ["# Title", "x = 1"]
    assert again.metadata.language_info == LANGUAGE_INFO and again.nbformat_minor == 5
    assert all(c.id for c in again.cells)
    assert normalise_notebook(path) is False
