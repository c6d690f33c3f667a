"""Certificates and TLS policy for the relay (issue 7)."""
