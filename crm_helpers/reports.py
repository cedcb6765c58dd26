"""Run notebooks with papermill and export them to HTML for readers who do not code.

The numbered notebooks in the workbook's ``notebooks/`` are the workbook; papermill executes a
copy of each (with parameter overrides) into an output folder, and nbconvert writes an HTML
version without the code cells next to it. nbformat, nbconvert and papermill are imported inside
the functions that use them: they take seconds to import, which ``crm --help`` need not wait.
"""

from __future__ import annotations

import functools
import sys
import threading
from contextlib import suppress
from pathlib import Path

from crm_helpers import config

# nbformat validates with jsonschema, whose import builds a parser for RFC 3987 IRIs when the
# optional rfc3987-syntax is installed (jupyter_events, of JupyterLab, installs it): two seconds
# of every command that runs a notebook, for a string format no notebook schema uses. Marked
# absent here (Python's import system then raises ImportError), jsonschema skips that one format.
sys.modules.setdefault("rfc3987_syntax", None)


def numbered_notebooks(folder: Path | None = None) -> list[Path]:
    """Notebooks named ``NN_*.ipynb`` in reading order (default: the workbook's ``notebooks/``)."""
    return sorted(Path(folder or config.notebooks_dir()).glob("[0-9][0-9]_*.ipynb"))


def declared_parameters(notebook: Path) -> set[str]:
    """The names a notebook assigns in its cell tagged ``parameters`` (none without such a cell).

    Read with Python's own parser: ``papermill.inspect_notebook`` skips every line holding two
    ``=``, so a comment like ``# None = $CRM_DATA_DIR`` would hide its parameter.
    """
    import ast

    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    source = next((c.source for c in cells if "parameters" in c.metadata.get("tags", [])), "")
    return {node.id for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}


#: nbconvert template folder: JupyterLab's look without the scripts it loads from the network
#: (require.js, MathJax, mermaid, widgets), so an exported page reads offline.
TEMPLATES = Path(__file__).parent / "templates"


@functools.cache
def html_exporter():
    """nbconvert's HTML exporter with the offline template, code cells hidden: one per process.

    Its first page costs about a second (importing nbconvert, compiling the Jinja templates and
    the regular expressions of its Markdown and HTML filters); later pages reuse all of that.
    """
    from nbconvert import HTMLExporter

    return HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                        extra_template_basedirs=[str(TEMPLATES)], template_name="offline")


def warm_html_export() -> threading.Thread:
    """Prepare :func:`html_exporter` in a background thread (it renders a one-cell page), and return it.

    Started when a kernel starts: the process only waits for the kernel then, so the export's
    set-up is done by the time the notebook has run. A failure here is left to the export itself.
    """
    def warm():
        import nbformat

        with suppress(Exception):
            html_exporter().from_notebook_node(nbformat.v4.new_notebook(
                cells=[nbformat.v4.new_markdown_cell("**warm-up**")], metadata={"language_info": LANGUAGE_INFO}))

    thread = threading.Thread(target=warm, name="warm-html-export", daemon=True)
    thread.start()
    return thread


def export_html(notebook: Path) -> Path:
    """Write ``<notebook>.html`` beside an executed notebook, with code cells hidden.

    The page is self-contained: styles inline, charts embedded, no script or style from the network.
    """
    import nbformat

    body, _ = html_exporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    html = Path(notebook).with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; its executed copy is kept as ``<name>.failed.ipynb``."""


def run_notebook(notebook: Path, out_dir: Path, parameters: dict | None = None,
                 name: str | None = None, progress: bool | dict = True, finish=None,
                 keep_previous: bool = False, kill_kernel: bool = False, save_each_cell: bool = True,
                 kernel=None) -> Path:
    """Execute one notebook with papermill into ``out_dir`` and export it to HTML.

    The run writes under a temporary name and replaces ``<name>.ipynb`` and ``<name>.html`` only
    when it succeeds. When it fails, the failed run is kept as ``<name>.failed.ipynb`` (with
    papermill's error banner) and :class:`NotebookFailed` is raised; the previous good copies are
    renamed ``<name>.last-good.ipynb`` / ``.html`` so no stale report stays under the usual name,
    or, with ``keep_previous``, left untouched (a periodic report: the index marks the failure).

    Args:
        notebook: the source notebook.
        out_dir: where the executed copy and its HTML go (created if missing).
        parameters: overrides injected after the cell tagged ``parameters``; those the notebook
            does not declare there are left out.
        name: file name of the executed copy (default: the notebook's own).
        progress: papermill's progress bar: True, False, or tqdm options (``desc``, ``position``).
        finish: called with the executed notebook's path after a successful run, before the
            HTML export (e.g. :func:`lift_headline`).
        keep_previous: on failure, leave the previous good copies under their usual names.
        kill_kernel: once the last cell has run, stop the kernel at once rather than ask it to
            exit (nbclient's ``shutdown_kernel="immediate"``): a kernel that imported pandas, Ibis
            and DuckDB takes about a second to tear its Python down. For notebooks that only read.
        save_each_cell: papermill rewrites the running copy after every cell, so a long run can be
            followed; without, it writes the copy once, at the end (or at the failed cell).
        kernel: a running kernel's manager (:func:`warm_kernel`) to run in, left running;
            default: a new kernel for this notebook alone.
    Returns:
        The path of the executed notebook.
    """
    import papermill as pm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (name or Path(notebook).name)
    running, failed = target.with_suffix(".running.ipynb"), target.with_suffix(".failed.ipynb")
    declared = declared_parameters(notebook)
    parameters = {key: value for key, value in (parameters or {}).items() if key in declared}
    warming = warm_html_export()
    try:
        pm.execute_notebook(str(notebook), str(running), parameters=parameters,
                            kernel_name="python3", cwd=str(Path(notebook).parent), progress_bar=progress,
                            request_save_on_cell_execute=save_each_cell,
                            shutdown_kernel="immediate" if kill_kernel else "graceful",
                            **({"km": kernel} if kernel is not None else {}))
    except pm.PapermillExecutionError as err:
        running.replace(failed)
        for good in (target, target.with_suffix(".html")):
            if good.exists() and not keep_previous:
                good.replace(good.with_name(good.stem + ".last-good" + good.suffix))
        kept = "the previous report is kept" if keep_previous else "no current report is left under its name"
        raise NotebookFailed(f"{Path(notebook).name} failed at cell {err.exec_count}: {err.ename}: "
                             f"{str(err.evalue).splitlines()[0] if err.evalue else ''} "
                             f"(see {failed}; {kept})") from None
    finally:
        warming.join()  # never left running at exit, where it could only print noise
    settle_parameter_cell_id(running)
    if finish is not None:
        finish(running)
    export_html(running).replace(target.with_suffix(".html"))
    running.replace(target)
    for stale in (failed, *(target.with_name(target.stem + ".last-good" + ext) for ext in (".ipynb", ".html"))):
        stale.unlink(missing_ok=True)
    return target


def settle_parameter_cell_id(notebook: Path) -> None:
    """Give papermill's injected-parameters cell an id from its source instead of a random one,
    so the same period on the same data gives the same executed notebook and page."""
    import hashlib

    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = hashlib.sha1(cell.source.encode()).hexdigest()[:8]
            nbformat.write(nb, notebook)


#: The kernel and language metadata JupyterLab writes for a Python 3.12 kernel. A notebook that
#: ships them is not marked as changed when JupyterLab opens it, so opening never rewrites it.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
                 "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
                 "pygments_lexer": "ipython3", "version": "3.12.1"}


def normalise_notebook(path: Path) -> bool:
    """Rewrite a notebook as Jupyter saves it: our kernel metadata, format 4.5, every cell an id.

    Only notebook metadata and format change, never a cell's source. The text is what
    ``nbformat.writes`` gives plus a trailing newline, as JupyterLab writes it. Cells without an
    id get one derived from their position and source, so the result is deterministic.
    Returns whether the file changed.
    """
    import hashlib

    import nbformat

    path = Path(path)
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.nbformat_minor = 5
    nb.metadata.kernelspec = KERNELSPEC
    nb.metadata.language_info = LANGUAGE_INFO
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            cell.id = hashlib.sha1(f"{index}:{cell.source}".encode()).hexdigest()[:8]
    after = nbformat.writes(nb) + "\n"
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


# --- the periodic report ---------------------------------------------------------------------

#: Where a report notebook leaves its headline figures for :func:`lift_headline` to record.
HEADLINE_MIME = "application/vnd.crm.headline+json"
#: Key of the headline figures in an executed report's notebook metadata.
HEADLINE_KEY = "crm_report"


def record_headline(figures: dict) -> None:
    """In a report notebook: hand the headline figures (plain JSON values) to the executed copy.

    A kernel cannot write the notebook papermill is saving, so the figures go out as one output
    of their own type; :func:`lift_headline` moves them into the notebook's metadata after the run.
    """
    from IPython.display import display

    display({HEADLINE_MIME: figures}, raw=True)


def lift_headline(notebook: Path) -> dict | None:
    """Move the figures of :func:`record_headline` into ``metadata["crm_report"]`` of ``notebook``.

    The output that carried them is removed (the HTML page shows the figures in its own tables).
    Returns the figures, or None when the notebook recorded none.
    """
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    figures = None
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            if HEADLINE_MIME in output.get("data", {}):
                figures = dict(output["data"][HEADLINE_MIME])
            else:
                kept.append(output)
        if cell.cell_type == "code":
            cell.outputs = kept
    if figures is not None:
        nb.metadata[HEADLINE_KEY] = figures
        if figures.get("organisation") and figures.get("period"):  # the HTML page's <title>
            nb.metadata["title"] = f"{figures['organisation']}: report for {figures['period']}"
        nbformat.write(nb, notebook)
    return figures


def headline_of(notebook: Path) -> dict | None:
    """The headline figures recorded in an executed report (None if it has none)."""
    import nbformat

    return nbformat.read(notebook, as_version=4).metadata.get(HEADLINE_KEY)


@functools.cache
def _second_process():
    """The kernel's one helper process (spawned on first use, kept for the kernel's life)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def _call(function: str, *args):
    """Import ``package.module.function`` and call it (in the helper process)."""
    import importlib

    module, name = function.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(*args)


def in_background(function: str, *args):
    """In a report notebook: start ``function(*args)`` in a second Python process; returns its future.

    ``function`` is named by its dotted path (``"crm_helpers.knowledge.forecast.report_outlook"``),
    so the kernel need not import its module first: on a second core, the helper imports the
    libraries (pandas and Ibis, the forecast's statsmodels) and computes while the kernel imports
    its charting libraries and draws the sections before. The cell that needs the result waits on
    ``.result()``, which re-raises the function's error there. Jobs run one after the other, in
    the order given; the helper is kept, so a kernel reused for the next period (a backfill) finds
    its imports done. Arguments and results must pickle.
    """
    from concurrent.futures.process import BrokenProcessPool

    try:
        return _second_process().submit(_call, function, *args)
    except BrokenProcessPool:  # the helper died (killed, out of memory): a new one
        _second_process.cache_clear()
        return _second_process().submit(_call, function, *args)


def report_notebook() -> Path:
    """The periodic report's notebook: ``notebooks/reports/periodic_report.ipynb``."""
    return config.notebooks_dir() / "reports" / "periodic_report.ipynb"


def run_report(label: str, out_dir: Path, parameters: dict, notebook: Path | None = None,
               folder: str | None = None, progress: bool | dict = True, kernel=None) -> Path:
    """Run the report notebook for one period into ``<out_dir>/<folder or label>/report.ipynb`` (+ ``.html``).

    ``parameters`` are the notebook's (``period`` is set to ``label``). The headline figures are
    lifted into the metadata before the HTML is written. A failure raises :class:`NotebookFailed`
    with :func:`run_notebook`'s guarantees (temporary name, ``report.failed.ipynb``) and leaves
    the previous good report untouched; the index marks the period failed. The report only
    reads and runs in seconds: its kernel is stopped at once when the last cell has run (unless
    ``kernel``, a :func:`warm_kernel`, is given), and the executed copy is written once, not after
    every cell.
    """
    return run_notebook(notebook or report_notebook(), Path(out_dir) / (folder or label),
                        {**parameters, "period": label}, name="report.ipynb", progress=progress,
                        finish=lift_headline, keep_previous=True, kill_kernel=True, save_each_cell=False,
                        kernel=kernel)


#: Run in a reused kernel before each notebook: a clean namespace, no open figure, and execution
#: counts from 1 again, so the executed copy is the one a new kernel would give.
RESET_KERNEL = ("import sys as _sys\n"
                "if 'matplotlib.pyplot' in _sys.modules: _sys.modules['matplotlib.pyplot'].close('all')\n"
                "get_ipython().reset(new_session=True)")
#: This process's warm kernels, by working folder.
_WARM: dict[str, object] = {}


def warm_kernel(cwd: Path):
    """A kernel kept running in this process for notebooks run from ``cwd`` (a backfill's periods).

    Started on first use; reset (:data:`RESET_KERNEL`) each time it is handed out again, so each
    notebook starts from an empty namespace, and only the imports (pandas, Ibis, matplotlib, the
    package) carry over: a kernel's start and imports are most of a short report's time. A kernel
    that died or cannot be reset is replaced; all are stopped when the process exits. Returns its
    kernel manager.
    """
    import atexit

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    km = _WARM.pop(str(cwd), None)
    if km is not None:
        for client in km.clients_made:  # nbclient leaves the clients of a kernel it does not own running
            client.stop_channels()
        km.clients_made.clear()
        if run_sync(km.is_alive)() and _reset(km):
            _WARM[str(cwd)] = km
            return km
        with suppress(Exception):
            run_sync(km.shutdown_kernel)(now=True)
    if not _WARM:
        atexit.register(stop_warm_kernels)
    km = AsyncKernelManager(kernel_name="python3")
    km.clients_made = []
    make_client = km.client
    km.client = lambda **kw: km.clients_made.append(make_client(**kw)) or km.clients_made[-1]
    run_sync(km.start_kernel)(cwd=str(cwd))
    _WARM[str(cwd)] = km
    return km


def _reset(km) -> bool:
    """Run :data:`RESET_KERNEL` in a kernel; whether it succeeded."""
    client = km.blocking_client()
    client.start_channels()
    try:
        reply = client.execute_interactive(RESET_KERNEL, silent=True, store_history=False, timeout=60)
        return reply["content"]["status"] == "ok"
    except Exception:  # a kernel that does not answer is replaced
        return False
    finally:
        client.stop_channels()


def stop_warm_kernels() -> None:
    """Stop this process's warm kernels (at once: they only read)."""
    from jupyter_core.utils import run_sync

    while _WARM:
        _, km = _WARM.popitem()
        for client in km.clients_made:
            client.stop_channels()
        with suppress(Exception):
            run_sync(km.shutdown_kernel)(now=True)


def _run_one(job: tuple) -> tuple[str, str | None]:
    """Worker of :func:`run_reports`: one period; returns (label, error line or None)."""
    label, out_dir, parameters, notebook, folder, position = job
    notebook = Path(notebook or report_notebook())
    kernel = warm_kernel(notebook.parent)  # before papermill is imported: the kernel starts meanwhile
    try:
        run_report(label, out_dir, parameters, notebook, folder, progress={"desc": label, "position": position},
                   kernel=kernel)
    except NotebookFailed as err:
        return label, str(err)
    return label, None


def run_reports(labels: list[str], out_dir: Path, parameters: dict, notebook: Path | None = None,
                suffix: str = "", workers: int | None = None) -> dict[str, str | None]:
    """Run the report for each period, in parallel worker processes, one progress bar per period.

    Returns each label's error line (None when it succeeded); a failed period does not stop the
    others. ``suffix`` is appended to each period's folder (filtered reports). ``workers``
    defaults to the number of CPU cores; 1 runs in this process, one period after the other.
    Each worker runs its periods in one :func:`warm_kernel`, started before papermill is imported
    and stopped at once when the worker ends.
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(workers or os.cpu_count() or 1, len(labels)))
    jobs = [(label, Path(out_dir), parameters, notebook, label + suffix, i % workers)
            for i, label in enumerate(labels)]
    if workers == 1:
        try:
            return dict(map(_run_one, jobs))
        finally:
            stop_warm_kernels()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(pool.map(_run_one, jobs))


def _index_row(folder: Path) -> dict | None:
    """One report folder in the index: its figures, status and links (None if it holds no report)."""
    current, failed, html = folder / "report.ipynb", folder / "report.failed.ipynb", folder / "report.html"
    if not current.exists() and not failed.exists():
        return None
    return {"folder": folder.name, "figures": headline_of(current) if current.exists() else None,
            "failed": failed.exists(), "html": html.relative_to(folder.parent) if html.exists() else None,
            "failed_notebook": failed.relative_to(folder.parent) if failed.exists() else None}


def _index_cell(kpi: str, value, figures: dict) -> str:
    """A headline value as the index shows it: money in the report's currency, rates as %."""
    if value is None:
        return "–"
    if kpi in ("revenue", "aov"):
        return config.Settings(currency=figures.get("currency", "GBP"),
                               locale=figures.get("locale", "en_GB")).money(value, 0 if kpi == "revenue" else 2)
    if kpi.endswith(("_rate", "_share")):
        return f"{value:.1%}"
    return f"{value:,.0f}"


def build_index(out_dir: Path) -> Path:
    """Write ``<out_dir>/index.html``: every report with its headline KPIs, read from the reports' metadata.

    Nothing is recomputed: the figures are those each executed report recorded. A period whose
    last run failed is marked, with links to the failed run and to the last good report.
    """
    from html import escape

    out_dir = Path(out_dir)
    rows = [row for folder in sorted(p for p in out_dir.iterdir() if p.is_dir())
            if (row := _index_row(folder)) is not None]
    columns = next((r["figures"]["columns"] for r in rows if r["figures"]), [])
    kpis_shown = [kpi for kpi, _ in columns]
    org = next((r["figures"].get("organisation") for r in rows if r["figures"]), None) or "Periodic reports"
    head = "".join(f"<th>{escape(name)}</th>" for _, name in columns)
    body = []
    for row in rows:
        fig = row["figures"] or {}
        values = "".join(f"<td class='num'>{_index_cell(k, fig.get('kpis', {}).get(k, {}).get('current'), fig)}</td>"
                         for k in kpis_shown)
        link = f"<a href='{escape(str(row['html']))}'>{escape(row['folder'])}</a>" if row["html"] else escape(row["folder"])
        status = "ok"
        if row["failed"]:
            status = (f"<strong class='failed'>failed</strong> (<a href='{escape(str(row['failed_notebook']))}'>"
                      f"failed run</a>{'; figures of the last good report' if fig else ''})")
        body.append(f"<tr><td>{link}</td><td>{escape(fig.get('slice', ''))}</td>{values}<td>{status}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(org)}: periodic reports</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
th,td{{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:left}} td.num{{text-align:right}}
td:first-child{{white-space:nowrap}}
.failed{{color:#b00}}</style></head>
<body><h1>{escape(org)}: periodic reports</h1>
<p>{len(rows)} report{'' if len(rows) == 1 else 's'}; the headline KPIs of each period as its report recorded them.</p>
<table><thead><tr><th>Period</th><th>Slice</th>{head}<th>Status</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
