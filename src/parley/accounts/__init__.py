"""Agents and admins: who may sign in to a workspace's inbox, and what they may do there."""
