"""Models of the deploy app (filled in by the issues that build it)."""
