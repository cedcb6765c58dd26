"""Run notebooks with papermill and export them to HTML for readers who do not code.

The numbered notebooks in the workbook's ``notebooks/`` are the workbook; papermill executes a
copy of each (with parameter overrides) into an output folder, and nbconvert writes an HTML
version without the code cells next to it. nbformat, nbconvert and papermill are imported inside
the functions that use them: they take seconds to import, which ``crm --help`` need not wait.
"""

from __future__ import annotations

from pathlib import Path

from crm_helpers import config


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


def export_html(notebook: Path) -> Path:
    """Write ``<notebook>.html`` beside an executed notebook, with code cells hidden."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    html = Path(notebook).with_suffix(".html")
    html.write_text(body, encoding="utf-8")
    return html


class NotebookFailed(RuntimeError):
    """A notebook stopped with an error; its executed copy is kept as ``<name>.failed.ipynb``."""


def run_notebook(notebook: Path, out_dir: Path, parameters: dict | None = None,
                 name: str | None = None) -> Path:
    """Execute one notebook with papermill into ``out_dir`` and export it to HTML.

    The run writes under a temporary name and replaces ``<name>.ipynb`` and ``<name>.html`` only
    when it succeeds. When it fails, no stale report stays under the usual name: the previous
    good copies are renamed ``<name>.last-good.ipynb`` / ``.html``, the failed run is kept as
    ``<name>.failed.ipynb`` (with papermill's error banner) and :class:`NotebookFailed` is raised.

    Args:
        notebook: the source notebook.
        out_dir: where the executed copy and its HTML go (created if missing).
        parameters: overrides injected after the cell tagged ``parameters``; those the notebook
            does not declare there are left out.
        name: file name of the executed copy (default: the notebook's own).
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
    try:
        pm.execute_notebook(str(notebook), str(running), parameters=parameters,
                            kernel_name="python3", cwd=str(Path(notebook).parent), progress_bar=True)
    except pm.PapermillExecutionError as err:
        running.replace(failed)
        for good in (target, target.with_suffix(".html")):
            if good.exists():
                good.replace(good.with_name(good.stem + ".last-good" + good.suffix))
        raise NotebookFailed(f"{Path(notebook).name} failed at cell {err.exec_count}: {err.ename}: "
                             f"{str(err.evalue).splitlines()[0] if err.evalue else ''} "
                             f"(see {failed}; no current report is left under its name)") from None
    export_html(running).replace(target.with_suffix(".html"))
    running.replace(target)
    for stale in (failed, *(target.with_name(target.stem + ".last-good" + ext) for ext in (".ipynb", ".html"))):
        stale.unlink(missing_ok=True)
    return target


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
