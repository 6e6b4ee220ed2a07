"""Registered clusters that workspaces deploy to; the `local` cluster always exists."""
