"""Version 1 of a service whose API changes across a restart."""

__all__ = ["double"]


def double(x: int) -> int:
    """Twice ``x``."""
    return 2 * x
