"""Knowledge: segments, lifetime value, churn risk, next best product and forecasts (to come)."""
