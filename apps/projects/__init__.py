"""Tenancy: organizations, members and roles, projects, applications, workspaces, tokens, audit."""
