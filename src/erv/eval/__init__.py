"""Scoring predictions: metric definitions with bootstrap intervals (`metrics`), `erv evaluate`
(`evaluate`), report tables and plots (`report`), and agreement between judges (`agreement`).
"""
