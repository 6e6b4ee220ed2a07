"""REST API of the clusters app."""
