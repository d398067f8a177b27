"""Incidents: commands that change them and queries over their read models."""
