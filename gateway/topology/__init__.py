"""The service graph correlation walks (SPEC §14)."""
