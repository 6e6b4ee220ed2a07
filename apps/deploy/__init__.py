"""Releases, runtimes and deployments of applications."""
