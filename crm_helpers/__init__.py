"""Helpers for the analytical CRM workbook, arranged like the course.

- ``crm_helpers.data``: declare the operational systems' exports and collect them into staging.
- ``crm_helpers.information``: one customer view (standardise, identity, star schema) and the
  numbers a manager can quote (kpis, rfm, cohorts, olap).
- ``crm_helpers.knowledge`` and ``crm_helpers.wisdom``: the later stages.
- ``crm_helpers.sample``: the seeded sample world, with its ground truth.
- At the top, what every stage shares: ``config`` (paths and settings), ``warehouse`` (the one
  ``connect``), ``periods``, ``privacy``, ``plots``, ``truth``, ``reports`` and the ``crm`` command.
"""

__version__ = "0.2.0"


def setup_notebook(seed: int = 42, dpi: int = 100, warehouse=None, data_dir=None):
    """One look for every notebook: plot theme, pandas display options, seeds and currency.

    Money is shown in the currency of the organisation's settings: those collect recorded in
    ``warehouse`` when it has them, else the ``settings:`` block of ``<data_dir>/sources.yml``
    (both default to the configured ones). Returns a seeded numpy ``Generator``.
    """
    from crm_helpers import config, plots
    from crm_helpers import warehouse as wh

    try:
        settings = wh.recorded_settings(warehouse)  # read and let go: a kernel must not hold the lock
    except wh.WarehouseMissing:
        settings = None
    settings = settings or config.load_settings(config.sources_yml(data_dir) if data_dir else None)
    return plots.setup_notebook(seed=seed, dpi=dpi, settings=settings)
