"""Running notebooks: a failed run never leaves a stale report under the usual name."""

from __future__ import annotations

import nbformat
import pytest

from crm_helpers import reports


def _notebook(path, code: str):
    """A one-cell notebook with a ``parameters`` cell before it."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("fail = False")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(code)]
    nb.metadata["kernelspec"] = reports.KERNELSPEC
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_failed_run_keeps_the_last_good_report_under_a_name_that_says_so(tmp_path):
    book = _notebook(tmp_path / "07_demo.ipynb", "assert not fail, 'the check failed'\nprint('good run')")
    out = tmp_path / "out"
    reports.run_notebook(book, out)
    assert "good run" in (out / "07_demo.html").read_text()

    with pytest.raises(reports.NotebookFailed, match="07_demo.ipynb failed at cell .*AssertionError: the check failed"):
        reports.run_notebook(book, out, {"fail": True})
    assert not (out / "07_demo.html").exists() and not (out / "07_demo.ipynb").exists()
    assert "good run" in (out / "07_demo.last-good.html").read_text()
    assert "the check failed" in (out / "07_demo.failed.ipynb").read_text()
    assert not list(out.glob("*.running.*"))

    reports.run_notebook(book, out)  # fixed: the report is current again, the leftovers go
    assert sorted(p.name for p in out.iterdir()) == ["07_demo.html", "07_demo.ipynb"]
