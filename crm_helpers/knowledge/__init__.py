"""Knowledge: segments (segments.py), lifetime value (clv.py); churn risk, next best product and
forecasts to come.

Next best offer (notebook 06): rules.py (association rules: co-occurrence counts in the engine,
rules by mlxtend), next_best.py (next best product per customer: rules, item-to-item similar
customers, popularity; time-split evaluation; the ``next_best_offer`` table), upsell.py (who is
ready for a higher tier, and the next tier's offer).
"""
