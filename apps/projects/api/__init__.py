"""REST API of the tenancy models."""
