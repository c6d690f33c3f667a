"""Phone-facing services: thin asyncio adapters around the pure cores of relay.proto."""
