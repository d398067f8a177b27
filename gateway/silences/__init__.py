"""Silences: create, list and expire them (SPEC §15)."""
