"""Pure decision code: no asyncio, no aiohttp, no I/O.

Everything here is a function of (state, answer, now) and is tested as plain
functions on a virtual clock. The I/O shells (``instasent_async._http`` and the
governor in ``instasent_async._ratelimit``) ask these modules and act on what
they say.
"""
