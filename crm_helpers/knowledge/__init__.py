"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come.

New-customer value (new_customers.py: first-impression features in the engine, a gradient-boosted
12-month value against the channel mean, score_recent) and monthly forecasts (forecast.py:
seasonal naive, Holt-Winters, SARIMAX with an Easter regressor, rolling-origin backtest).
"""
