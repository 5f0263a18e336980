"""Workspaces: one store each. Every other row belongs to exactly one workspace."""
