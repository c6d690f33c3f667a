"""TFTP (RFC 1350, 2347-2349, 7440): packets, the read-session state machine, the request screen."""
