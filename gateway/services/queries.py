"""Read-model SQL of the service endpoints."""

SELECT_SERVICES = """
select name, status, open_incidents, worst_severity, updated_at
from services order by name
"""
