"""Django apps of the console, one per domain."""
