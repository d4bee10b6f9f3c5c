"""Offline stand-ins for what tests and the demo cannot download: a tiny HumanOmni release
(`tiny_checkpoint`), synthetic clips (`synthetic_media`), a synthetic emotion-text corpus and
tiny verifiers (`synthetic_text`), and an OpenAI-compatible judge server (`judge_server`).
"""
