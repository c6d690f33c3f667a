"""The relay's management agent: registration, heartbeats, tasks (issue 4)."""
