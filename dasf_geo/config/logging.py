"""Logging configuration of dasf_geo backends.

:class:`LoggingConfig` reads keyword arguments and environment variables
prefixed with ``DE_LOGGING_`` (``DE_LOGGING_LEVEL``, ``DE_LOGGING_LOGFILE``,
…) and turns them into a :func:`logging.config.dictConfig` dictionary:

1. the YAML file ``config_file`` (default: the packaged ``logging.yaml``),
   merged into the packaged default when ``merge_config`` is true;
2. ``level`` overrides the level of every configured logger;
3. ``logfile`` adds a rotating file handler to every configured logger;
4. ``config_overrides`` (a mapping, a YAML string, or a YAML or JSON file) is
   merged in last.

Example:
    >>> from dasf_geo.config import LoggingConfig
    >>> config = LoggingConfig(level="DEBUG")
    >>> config.config_dict["loggers"]["dasf_geo"]["level"]
    10
"""

from __future__ import annotations

import copy
import json
import logging
import logging.config
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from dasf_geo.config._checks import short as _short
from dasf_geo.config.messaging import _Settings
from dasf_geo.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "ENV_PREFIX",
    "LEVEL_NAMES",
    "MAX_OVERRIDES_SIZE",
    "LoggingConfig",
    "load_mapping",
    "merge_config",
]

#: The packaged default logging configuration.
DEFAULT_CONFIG_FILE = Path(__file__).parent / "logging.yaml"

#: Prefix of the environment variables read by :class:`LoggingConfig`.
ENV_PREFIX = "DE_LOGGING_"

#: Level names accepted by ``level`` (case-insensitive), with their values.
LEVEL_NAMES = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "WARN": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}

#: Largest logging config file or override text read, in bytes.
MAX_OVERRIDES_SIZE = 1024 * 1024

_LOG_OPTIONS = {
    "config_file": "--log-config",
    "level": "--log-level",
    "logfile": "--log-file",
    "merge_config": "--merge-log-config",
    "config_overrides": "--log-overrides",
}

# Formatter and handler that ``logfile`` adds to the configuration.
_FILE_FORMATTER = "%(asctime)s - %(levelname)s - [%(name)s.%(funcName)s]: %(message)s"
_FILE_HANDLER = "dasf_geo_file_handler"


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A :class:`logging.StreamHandler` that follows ``sys.stderr``.

    Given ``sys.stderr`` (or nothing), it writes each record to whatever
    ``sys.stderr`` is at that moment rather than to the stream it was at
    configuration time: a notebook, a test runner or a caller that swaps
    ``sys.stderr`` (and closes the old one) keeps getting the records,
    instead of "--- Logging error ---" from a write to a closed stream.
    Another stream is used as given.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._follow = stream is None or stream is sys.stderr

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """``sys.stderr`` now, or the stream given."""
        return sys.stderr if getattr(self, "_follow", False) else self._stream

    @stream.setter
    def stream(self, value: Any) -> None:
        self._stream = value


def _parse_level(value: Any) -> int:
    """Convert a level name or number to a number in 1..50.

    Raises:
        ConfigurationError: the value is no known level.
    """
    if isinstance(value, str):
        text = value.strip()
        if text.upper() in LEVEL_NAMES:
            return LEVEL_NAMES[text.upper()]
        if text.isdigit():
            value = int(text)
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value <= logging.CRITICAL
    ):
        return value
    raise ConfigurationError(
        f"unknown log level {_short(value)}: use DEBUG, INFO, WARNING, ERROR or "
        "CRITICAL, or a number between 1 and 50 (10 is DEBUG, 50 is CRITICAL)"
    )


def merge_config(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``base`` recursively and return ``base``.

    Nested mappings are merged key by key; any other value in ``update``
    replaces the one in ``base``. ``base`` is modified in place.

    Args:
        base: the configuration to update.
        update: the values to merge in.

    Returns:
        ``base``.
    """
    for key, value in update.items():
        current = base.get(key)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merge_config(current, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _read_text(path: Path, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_OVERRIDES_SIZE:
            raise ConfigurationError(
                f"the {what} {str(path)!r} is {size} bytes; "
                f"use a file of at most {MAX_OVERRIDES_SIZE} bytes"
            )
        return path.read_text(encoding="utf-8")
    except ConfigurationError:
        raise
    except UnicodeDecodeError:
        raise ConfigurationError(
            f"the {what} {str(path)!r} is not UTF-8 text; give a YAML or JSON file"
        ) from None
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read the {what} {str(path)!r}: {exc.strerror or exc}"
        ) from None


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigurationError(
            f"{source} is not valid YAML: {problem}{where}"
        ) from None
    except RecursionError:
        raise ConfigurationError(f"{source} is nested too deeply") from None


def load_mapping(value: str | Path, what: str = "logging overrides") -> dict[str, Any]:
    """Load a mapping from a YAML string, or from a YAML or JSON file.

    A string that names an existing file, or ends in ``.yaml``, ``.yml`` or
    ``.json``, is read as a file; any other string is parsed as YAML (JSON
    is YAML too).

    Args:
        value: the YAML text or the path.
        what: how to call the value in error messages.

    Returns:
        The mapping.

    Raises:
        ConfigurationError: the file is missing or unreadable, the text is
            not valid YAML/JSON, or it is not a mapping.
    """
    text = str(value)
    if len(text) > MAX_OVERRIDES_SIZE:
        raise ConfigurationError(
            f"the {what} are {len(text)} characters long; "
            f"use at most {MAX_OVERRIDES_SIZE}"
        )
    is_path = isinstance(value, Path) or text.lower().endswith(
        (".yaml", ".yml", ".json")
    )
    if not is_path and "\n" not in text and len(text) < 4096:
        try:
            is_path = Path(text).is_file()
        except (OSError, ValueError):
            is_path = False
    if is_path:
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"the {what} file {text!r} does not exist; give an existing "
                "YAML or JSON file, or the YAML text itself"
            )
        source = f"the {what} file {text!r}"
        content = _read_text(path, f"{what} file")
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(content)
            except ValueError as exc:
                raise ConfigurationError(f"{source} is not valid JSON: {exc}") from None
        else:
            data = _parse_yaml(content, source)
    else:
        source = f"the {what} {_short(text)}"
        data = _parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"{source} must be a mapping such as "
            "'loggers: {dasf_geo: {level: DEBUG}}', got "
            f"{type(data).__name__} {_short(data)}"
        )
    return data


class LoggingConfig(_Settings):
    """Configuration for the logging of a backend module.

    Read from keyword arguments and environment variables prefixed with
    ``DE_LOGGING_`` (keyword arguments win). Call :meth:`configure_logging`
    to apply it.

    Raises:
        ConfigurationError: on construction, when the config file does not
            exist, the level is unknown, the log file's directory does not
            exist or the overrides are not a valid YAML/JSON mapping.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        extra="forbid",
        env_ignore_empty=True,  # VAR= in a compose file means "not set"
    )
    _option_names: ClassVar[dict[str, str]] = _LOG_OPTIONS

    config_file: Path = Field(
        DEFAULT_CONFIG_FILE,
        description="Path to the logging configuration (a YAML file).",
    )

    level: int | None = Field(
        None,
        description=(
            "Level for every configured logger, overriding the config file: "
            "DEBUG (10), INFO (20), WARNING (30), ERROR (40) or CRITICAL (50)."
        ),
    )

    logfile: Path | None = Field(
        None,
        description=(
            "A file to log to: adds a rotating file handler (10 MB, 5 "
            "backups) to every configured logger."
        ),
    )

    config_overrides: dict[str, Any] | None = Field(
        None,
        description=(
            "A mapping merged into the logging configuration last; a YAML "
            "string, or the path of a YAML or JSON file, is accepted."
        ),
    )

    merge_config: bool = Field(
        False,
        description=(
            "Merge config_file into the packaged default configuration "
            "instead of replacing it."
        ),
    )

    @field_validator("config_file", mode="before")
    @classmethod
    def _existing_file(cls, value: Any) -> Any:
        if value is None or value == "":
            return DEFAULT_CONFIG_FILE
        if not isinstance(value, (str, Path)):
            raise ValueError(f"the log config must be a file path, got {_short(value)}")
        path = Path(value).expanduser()
        try:
            exists = path.is_file()
        except (OSError, ValueError):
            exists = False
        if not exists:
            raise ValueError(
                f"the log config file {_short(str(value))} does not exist; "
                "give an existing YAML file in logging.config.dictConfig format"
            )
        return path

    @field_validator("level", mode="before")
    @classmethod
    def _valid_level(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return _parse_level(value)
        except ConfigurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("logfile", mode="before")
    @classmethod
    def _valid_logfile(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if not isinstance(value, (str, Path)):
            raise ValueError(f"the log file must be a file path, got {_short(value)}")
        path = Path(value).expanduser()
        if path.is_dir():
            raise ValueError(f"the log file {str(path)!r} is a directory; give a file")
        if not path.parent.is_dir():
            raise ValueError(
                f"the directory of the log file {str(path)!r} does not exist; "
                "create it first"
            )
        return path

    @field_validator("config_overrides", mode="before")
    @classmethod
    def _parse_overrides(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        if isinstance(value, (str, Path)):
            try:
                return load_mapping(value)
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value

    @property
    def config_dict(self) -> dict[str, Any]:
        """The dictionary passed to :func:`logging.config.dictConfig`.

        Raises:
            ConfigurationError: the config file cannot be read, is not valid
                YAML, or is not a mapping.
        """
        config = self._load_file(self.config_file)
        if self.merge_config and self.config_file.resolve() != (
            DEFAULT_CONFIG_FILE.resolve()
        ):
            config = merge_config(self._load_file(DEFAULT_CONFIG_FILE), config)

        loggers = config.get("loggers") or {}
        if not isinstance(loggers, dict):
            raise ConfigurationError(
                f"'loggers' in the log config {str(self.config_file)!r} must be "
                "a mapping of logger names to their settings"
            )
        if self.level is not None:
            for logger_config in loggers.values():
                if isinstance(logger_config, dict):
                    logger_config["level"] = self.level
        if self.logfile is not None:
            merge_config(
                config,
                {
                    "formatters": {_FILE_HANDLER: {"format": _FILE_FORMATTER}},
                    "handlers": {
                        _FILE_HANDLER: {
                            "class": "logging.handlers.RotatingFileHandler",
                            "mode": "a",
                            "level": "DEBUG",
                            "formatter": _FILE_HANDLER,
                            "filename": str(self.logfile),
                            "maxBytes": 10 * 1024 * 1024,
                            "backupCount": 5,
                            "encoding": "utf-8",
                            "delay": True,
                        }
                    },
                },
            )
            for logger_config in loggers.values():
                if isinstance(logger_config, dict):
                    handlers = logger_config.setdefault("handlers", [])
                    if _FILE_HANDLER not in handlers:
                        handlers.append(_FILE_HANDLER)
        if self.config_overrides:
            config = merge_config(config, self.config_overrides)
        return config

    @staticmethod
    def _load_file(path: Path) -> dict[str, Any]:
        source = f"the log config file {str(path)!r}"
        data = _parse_yaml(_read_text(path, "log config file"), source)
        if not data:
            raise ConfigurationError(f"{source} is empty; give a logging configuration")
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"{source} must hold a mapping in logging.config.dictConfig "
                f"format, got {type(data).__name__}"
            )
        data.setdefault("version", 1)
        return data

    def configure_logging(self) -> None:
        """Apply this configuration with :func:`logging.config.dictConfig`.

        Raises:
            ConfigurationError: the configuration cannot be read or
                ``dictConfig`` rejects it (the message says which part).
        """
        config = self.config_dict
        try:
            logging.config.dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            detail = str(exc)
            if exc.__cause__ is not None:
                detail += f": {exc.__cause__}"
            if len(detail) > 300:
                detail = detail[:297] + "..."
            raise ConfigurationError(
                f"the logging configuration from {str(self.config_file)!r} is "
                f"invalid: {detail}"
            ) from exc
