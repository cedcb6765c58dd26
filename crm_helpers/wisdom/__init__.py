"""Wisdom: campaigns chosen by expected value, contact optimisation, and measuring what worked (to come).

- ``measure``: campaigns against their control groups (uplift with Newcombe intervals,
  incremental revenue and margin, ROI after contact costs, by channel and segment), stored in
  ``campaign_results``; the periodic report's campaign section.
- ``touchpoints``: a change at a touch point in one region, by difference in differences.
"""
