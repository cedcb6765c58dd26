"""Helpers for the analytical CRM workbook."""

__version__ = "0.1.0"
