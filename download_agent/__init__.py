"""The relay's download agent: verified, resumable firmware cache (issue 6)."""
