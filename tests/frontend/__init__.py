"""Phone-facing services over real loopback sockets."""
