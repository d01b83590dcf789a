"""Layer 4, transport: WebSocket I/O for backends (listen loop) and callers."""
