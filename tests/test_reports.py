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


@pytest.mark.slow
def test_a_reused_kernel_starts_each_notebook_afresh(tmp_path):
    """A backfill's warm kernel: the same process, but no variable, figure or count carried over."""
    book = _notebook(tmp_path / "demo.ipynb",
                     "import os\nimport matplotlib.pyplot as plt\n"
                     "assert 'leftover' not in globals() and not plt.get_fignums(), 'state carried over'\n"
                     "leftover = plt.figure()\nprint('pid', os.getpid())")
    kernel = reports.warm_kernel(tmp_path)
    try:
        runs = [reports.run_notebook(book, tmp_path / name, kernel=reports.warm_kernel(tmp_path))
                for name in ("first", "second")]
        assert reports.warm_kernel(tmp_path) is kernel
    finally:
        reports.stop_warm_kernels()
    outputs = [nbformat.read(run, as_version=4).cells[-1] for run in runs]
    assert [cell.execution_count for cell in outputs] == [2, 2]  # as a new kernel counts
    assert outputs[0].outputs[0]["text"] == outputs[1].outputs[0]["text"]  # the same kernel process
    assert not kernel.has_kernel


def test_a_background_job_returns_its_result_and_raises_its_error():
    from datetime import date

    done = reports.in_background("crm_helpers.periods.parse_period", "2025-11", "month")
    failed = reports.in_background("crm_helpers.periods.parse_period", "2025-13", "month")
    assert done.result(timeout=60) == date(2025, 11, 1)
    with pytest.raises(ValueError, match="1..12"):
        failed.result(timeout=60)


def test_the_report_kernel_imports_no_model_library():
    """The modules the periodic report's kernel imports leave statsmodels, scipy.stats and
    scikit-learn to the functions that fit (each costs a second or more to import)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from crm_helpers.information import report\n"
            "from crm_helpers.knowledge import forecast, report_sections\n"
            "from crm_helpers.wisdom import measure\n"
            "from crm_helpers import plots, display\n"
            "print(sorted({'statsmodels', 'sklearn', 'scipy.stats', 'seaborn'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout
