"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come.

churn.py: churn risk at a cut-off (features in the engine, calibrated gradient boosting, RFM and
BG/NBD baselines, importance in words)."""
