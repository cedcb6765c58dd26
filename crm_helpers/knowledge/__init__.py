"""Knowledge: who the customers are, what they are worth, who is leaving, what they buy next, and
where the business is heading.

- Segments and migration (notebook 04): ``segments.py`` chooses the number of segments from
  evidence, profiles and names them (``assign_segments``: each customer's segment as of a date);
  ``migration.py`` follows customers between segments and between product tiers (a hidden Markov
  model of the tier, quarter by quarter).
- Value and risk (notebook 05): ``clv.py`` (BG/NBD, modified BG/NBD, Pareto/NBD and Gamma-Gamma
  with pymc-marketing; the calibration/holdout split in the engine), ``scoreboard.py`` (BTYD
  against gradient boosting and an RFM-quintile baseline, by segment), ``clv_plots.py``,
  ``churn.py`` (attrition as of a cut-off, calibrated gradient boosting against RFM and BTYD
  baselines) and ``scores.py`` (the ``customer_scores`` table the wisdom stage reads).
- Next best offer (notebook 06): ``rules.py`` (association rules, co-occurrence counted in the
  engine, mlxtend on the reduced table), ``next_best.py`` (rules, similar customers and
  popularity; the ``next_best_offer`` table) and ``upsell.py`` (the next tier).
- New customers and forecasts (notebook 07): ``new_customers.py`` (12-month value from first
  impressions) and ``forecast.py`` (Holt-Winters and SARIMAX against seasonal naive, in a
  rolling-origin backtest).
- The periodic report's knowledge sections: ``report_sections.py`` (segments, migration, churn
  risk and CLV at risk from ``customer_scores``; cross-sell by category from ``next_best_offer``;
  light reads, no fitting).
"""
