"""Version 2 of a service whose API changes across a restart."""

__all__ = ["triple"]


def triple(x: int) -> int:
    """Three times ``x``."""
    return 3 * x
