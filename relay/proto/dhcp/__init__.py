"""DHCP (RFC 2131/2132) for phone fleets: packet codec, boot options, lease engine, inform mode.

Pure and synchronous (relay.proto rules): the adapter in relay/frontend owns the
sockets, the clock and the SQLite lease log; everything here takes `now` as an
argument and reports changes as events.
"""
