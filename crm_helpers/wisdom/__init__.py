"""Wisdom: campaigns chosen by expected value, contact optimisation, and measuring what worked (to come).

- ``campaigns``: the campaign types (cross-sell, up-sell, retention, win-back) as candidate
  contacts per customer x channel x offer, with expected incremental margin, cost and consent;
  hold-out sizing.
- ``handoff``: the plan recorded in ``campaign_plan`` with its control group, and the lists
  exported per channel for the operational CRM.
"""
