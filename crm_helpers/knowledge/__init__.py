"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come.

Lifetime value (notebook 05): clv.py (BG/NBD, modified BG/NBD, Pareto/NBD and Gamma-Gamma with
pymc-marketing; the calibration/holdout split in the engine), scoreboard.py (BTYD against gradient
boosting and an RFM-quintile baseline, by segment), clv_plots.py (its charts) and scores.py (the
``customer_scores`` table written back to the warehouse).
"""
