"""Models of the pipelines app (filled in by the issues that build it)."""
