"""Wisdom: campaigns chosen by expected value, contact optimisation, and measuring what worked.

- ``uplift``: campaign history with features as of each campaign's start (engine), T- and
  X-learners and a response model per channel, Qini and uplift curves, calibration by measured
  results.
- ``campaigns``: the campaign types (cross-sell, up-sell, retention, win-back) as candidate
  contacts per customer x channel x offer, with expected incremental margin, cost and consent;
  hold-out sizing.
- ``optimise``: who gets which offer through which channel under a budget, channel capacities,
  a per-customer limit and conflict rules: exact MILP (HiGHS) or Lagrangian relaxation with its
  gap; greedy top-N baselines.
- ``handoff``: the plan recorded in ``campaign_plan`` with its control group, and the lists
  exported per channel for the operational CRM.
- ``measure``: campaigns against their control groups (uplift with Newcombe intervals,
  incremental revenue and margin, ROI after contact costs, by channel and segment), stored in
  ``campaign_results``; the periodic report's campaign section.
- ``touchpoints``: a change at a touch point in one region, by difference in differences.

Uplift is estimated by channel and offer type: ``dim_campaign.offer_type`` is a feature of each
channel's learners, and ``Settings.offer_types`` says which past type each plan offer resembles.

Closing the loop: ``uplift.calibration`` shrinks each measured channel's factor (measured over
planned uplift) towards its assumption by the measurement's precision, and
``measure.next_plan`` re-optimises the next period's plan with and without it.
"""
