"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come.

Segments and migration (notebook 04): segments.py also chooses the number of segments from
evidence, profiles and names the segments (assign_segments: each customer's segment as of a
date); migration.py follows customers between segments and between product tiers (a hidden
Markov model of the tier, quarter by quarter)."""
