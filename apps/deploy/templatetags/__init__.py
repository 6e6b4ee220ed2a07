"""Template tags of the deploy app."""
