"""Wisdom: campaigns chosen by expected value, contact optimisation, and measuring what worked (to come)."""
