"""Layer 3, backend: functions, classes and modules as pydantic models."""
