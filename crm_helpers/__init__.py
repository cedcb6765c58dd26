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


def setup_notebook(seed: int = 42, dpi: int = 100):
    """One look for every notebook: plot theme, pandas display options and seeds (see :mod:`plots`).

    Returns a seeded numpy ``Generator`` for anything random in the notebook.
    """
    from crm_helpers.plots import setup_notebook as _setup

    return _setup(seed=seed, dpi=dpi)
