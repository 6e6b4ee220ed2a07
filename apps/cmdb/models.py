"""Models of the cmdb app (filled in by the issues that build it)."""
