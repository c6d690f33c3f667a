"""HTTP authentication (RFC 7235, RFC 7616 Digest): just what the phones' REST API needs."""
