"""The dasf_geo.config package exposes its public names lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import dasf_geo.config


@pytest.mark.parametrize("name", dasf_geo.config.__all__)
def test_every_public_name_imports(name):
    value = getattr(dasf_geo.config, name)
    assert value is not None
    assert name in dir(dasf_geo.config)


def test_names_come_from_their_modules():
    from dasf_geo.config.logging import LoggingConfig
    from dasf_geo.config.messaging import PulsarConfig, WebsocketURLConfig

    assert dasf_geo.config.PulsarConfig is PulsarConfig
    assert dasf_geo.config.WebsocketURLConfig is WebsocketURLConfig
    assert dasf_geo.config.LoggingConfig is LoggingConfig


def test_unknown_name():
    with pytest.raises(AttributeError) as info:
        _ = dasf_geo.config.NoSuchConfig
    assert str(info.value) == (
        "module 'dasf_geo.config' has no attribute 'NoSuchConfig'"
    )


def test_messaging_config_does_not_import_the_backend_layer():
    code = (
        "import sys; from dasf_geo.config import PulsarConfig, LoggingConfig; "
        "PulsarConfig(topic='t'); LoggingConfig(); "
        "print(sorted(m for m in sys.modules if m.startswith('dasf_geo.backend')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_reimport_is_stable():
    module = importlib.reload(dasf_geo.config)
    assert module.PulsarConfig.__name__ == "PulsarConfig"
