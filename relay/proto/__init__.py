"""Pure codecs and rules: no sockets, no asyncio, no SQLite, no logging.

Nothing here imports from the rest of the project (architecture.md).
"""
