"""The I/O shell around aiohttp: the connection pool, auth headers and the transport."""
