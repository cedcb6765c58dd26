"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come."""
