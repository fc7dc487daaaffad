"""Prices, usage reports, and limits and budgets (admission before a call, settlement
after it)."""
