"""Wisdom: campaigns chosen by expected value, contact optimisation, and measuring what worked (to come).

- ``campaigns``: the campaign types (cross-sell, up-sell, retention, win-back) as candidate
  contacts per customer x channel x offer, with expected incremental margin, cost and consent;
  hold-out sizing.
- ``handoff``: the plan recorded in ``campaign_plan`` with its control group, and the lists
  exported per channel for the operational CRM.
- ``measure``: campaigns against their control groups (uplift with Newcombe intervals,
  incremental revenue and margin, ROI after contact costs, by channel and segment), stored in
  ``campaign_results``; the periodic report's campaign section.
- ``touchpoints``: a change at a touch point in one region, by difference in differences.
"""
