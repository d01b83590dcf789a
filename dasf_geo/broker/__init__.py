"""Layer 5, broker: the embedded DASF/Pulsar-compatible WebSocket broker."""
