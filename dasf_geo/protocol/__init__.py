"""Layer 1, protocol: the DASF wire protocol as pure functions and models.

Nothing here opens a socket, starts a thread or touches asyncio: messages go
in as ``dict``/``str``/``bytes`` and come out the same way, so every rule of
``PROTOCOL.md`` can be tested message-in / message-out.
"""
