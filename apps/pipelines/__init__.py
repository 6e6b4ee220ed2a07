"""Pipelines: definitions, runs, task runs and their logs."""
