"""The embedded control plane (cloud.md). Imports only relay.sync and relay.proto."""
