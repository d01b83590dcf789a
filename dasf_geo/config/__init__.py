"""Configuration models: ``configure``, ``registry`` and the config classes."""
