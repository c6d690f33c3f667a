"""SIP (RFC 3261) messages: just enough for check-sync NOTIFY and its answer."""
