"""Tests of LoggingConfig: files, level, log file, overrides, merging."""

from __future__ import annotations

import json
import logging
import os

import pytest
import yaml

from dasf_geo.config.logging import (
    DEFAULT_CONFIG_FILE,
    MAX_OVERRIDES_SIZE,
    LoggingConfig,
    load_mapping,
    merge_config,
)
from dasf_geo.exceptions import ConfigurationError

PREFIX = "invalid LoggingConfig: "


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigurationError) as info:
        LoggingConfig(**kwargs)
    return str(info.value)


def test_default_file_is_packaged_and_valid():
    assert DEFAULT_CONFIG_FILE.is_file()
    config = LoggingConfig()
    assert config.config_file == DEFAULT_CONFIG_FILE
    data = config.config_dict
    assert data["loggers"]["dasf_geo"]["level"] == "INFO"
    # logs go to stderr so that piped command output stays clean
    assert data["handlers"]["console"]["stream"] == "ext://sys.stderr"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("DEBUG", 10), ("info", 20), ("Warning", 30), ("40", 40), (50, 50), (15, 15)],
)
def test_level_names_and_numbers(value, expected):
    config = LoggingConfig(level=value)
    assert config.level == expected
    assert {c["level"] for c in config.config_dict["loggers"].values()} == {expected}


@pytest.mark.parametrize("value", ["LOUD", 0, 51, -10, "1.5", True])
def test_unknown_level(value):
    assert error_of(level=value) == (
        PREFIX + "level (--log-level, environment variable DE_LOGGING_LEVEL): "
        f"unknown log level {value!r}: use DEBUG, INFO, WARNING, ERROR or "
        "CRITICAL, or a number between 1 and 50 (10 is DEBUG, 50 is CRITICAL)"
    )


def test_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DE_LOGGING_LEVEL", "ERROR")
    monkeypatch.setenv("DE_LOGGING_LOGFILE", str(tmp_path / "x.log"))
    monkeypatch.setenv("DE_LOGGING_CONFIG_OVERRIDES", "loggers: {extra: {}}")
    monkeypatch.setenv("DE_LOGGING_MERGE_CONFIG", "true")
    config = LoggingConfig()
    assert config.level == 40
    assert config.logfile == tmp_path / "x.log"
    assert config.config_overrides == {"loggers": {"extra": {}}}
    assert config.merge_config is True
    assert LoggingConfig(level="DEBUG").level == 10  # keyword wins


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert error_of(config_file=path) == (
        PREFIX + "config_file (--log-config, environment variable "
        f"DE_LOGGING_CONFIG_FILE): the log config file '{path}' does not exist; "
        "give an existing YAML file in logging.config.dictConfig format"
    )


def test_wrong_typed_config_file():
    assert error_of(config_file=3) == (
        PREFIX + "config_file (--log-config, environment variable "
        "DE_LOGGING_CONFIG_FILE): the log config must be a file path, got 3"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "version: [1",
            "is not valid YAML: expected ',' or ']', but got "
            "'<stream end>' (line 1, column 12)",
        ),
        ("", "is empty; give a logging configuration"),
        (
            "- a\n- b\n",
            "must hold a mapping in logging.config.dictConfig format, got list",
        ),
    ],
)
def test_bad_config_file_content(tmp_path, content, problem):
    path = tmp_path / "log.yaml"
    path.write_text(content)
    config = LoggingConfig(config_file=path)
    with pytest.raises(ConfigurationError) as info:
        _ = config.config_dict
    assert str(info.value) == f"the log config file '{path}' {problem}"


def test_binary_config_file(tmp_path):
    path = tmp_path / "log.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigurationError) as info:
        LoggingConfig(config_file=path).configure_logging()
    assert str(info.value) == (
        f"the log config file '{path}' is not UTF-8 text; give a YAML or JSON file"
    )


def test_oversized_config_file(tmp_path):
    path = tmp_path / "log.yaml"
    path.write_text("#" * (MAX_OVERRIDES_SIZE + 1))
    with pytest.raises(ConfigurationError) as info:
        _ = LoggingConfig(config_file=path).config_dict
    assert str(info.value) == (
        f"the log config file '{path}' is {MAX_OVERRIDES_SIZE + 1} bytes; use a "
        f"file of at most {MAX_OVERRIDES_SIZE} bytes"
    )


def test_dictconfig_rejection_is_a_configuration_error(tmp_path):
    path = tmp_path / "log.yaml"
    path.write_text("version: 1\nhandlers: {h: {class: nowhere.Handler}}\n")
    with pytest.raises(ConfigurationError) as info:
        LoggingConfig(config_file=path).configure_logging()
    assert str(info.value) == (
        f"the logging configuration from '{path}' is invalid: Unable to "
        "configure handler 'h': Cannot resolve 'nowhere.Handler': No module "
        "named 'nowhere'"
    )


def test_loggers_must_be_a_mapping(tmp_path):
    path = tmp_path / "log.yaml"
    path.write_text("version: 1\nloggers: [a]\n")
    with pytest.raises(ConfigurationError) as info:
        _ = LoggingConfig(config_file=path, level=10).config_dict
    assert str(info.value) == (
        f"'loggers' in the log config '{path}' must be a mapping of logger names "
        "to their settings"
    )


def test_merge_with_default(tmp_path):
    path = tmp_path / "log.yaml"
    path.write_text("version: 1\nloggers:\n  mine: {level: DEBUG}\n")
    assert "dasf_geo" not in LoggingConfig(config_file=path).config_dict["loggers"]
    merged = LoggingConfig(config_file=path, merge_config=True).config_dict
    assert merged["loggers"]["mine"] == {"level": "DEBUG"}
    assert merged["loggers"]["dasf_geo"]["level"] == "INFO"


def test_overrides_from_yaml_text_and_files(tmp_path):
    text = "loggers: {dasf_geo: {level: ERROR}}"
    assert (
        LoggingConfig(config_overrides=text).config_dict["loggers"]["dasf_geo"]["level"]
        == "ERROR"
    )
    yaml_file = tmp_path / "o.yml"
    yaml_file.write_text(text)
    json_file = tmp_path / "o.json"
    json_file.write_text(json.dumps({"loggers": {"dasf_geo": {"level": "DEBUG"}}}))
    assert LoggingConfig(config_overrides=str(yaml_file)).config_overrides == (
        yaml.safe_load(text)
    )
    assert LoggingConfig(config_overrides=json_file).config_overrides == {
        "loggers": {"dasf_geo": {"level": "DEBUG"}}
    }
    # an existing file without a known suffix is read too
    plain = tmp_path / "overrides"
    plain.write_text(text)
    assert LoggingConfig(config_overrides=str(plain)).config_overrides == (
        yaml.safe_load(text)
    )


OVERRIDES = (
    "config_overrides (--log-overrides, environment variable "
    "DE_LOGGING_CONFIG_OVERRIDES): "
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "a: [1",
            "the logging overrides 'a: [1' is not valid YAML: expected ',' "
            "or ']', but got '<stream end>' (line 1, column 6)",
        ),
        (
            "- 1",
            "the logging overrides '- 1' must be a mapping such as "
            "'loggers: {dasf_geo: {level: DEBUG}}', got list [1]",
        ),
        (
            "just text",
            "the logging overrides 'just text' must be a mapping such "
            "as 'loggers: {dasf_geo: {level: DEBUG}}', got str 'just text'",
        ),
        (
            "/no/such.json",
            "the logging overrides file '/no/such.json' does not "
            "exist; give an existing YAML or JSON file, or the YAML text itself",
        ),
        (
            "x" * (MAX_OVERRIDES_SIZE + 1),
            f"the logging overrides are "
            f"{MAX_OVERRIDES_SIZE + 1} characters long; use at most "
            f"{MAX_OVERRIDES_SIZE}",
        ),
    ],
)
def test_bad_overrides(value, problem):
    assert error_of(config_overrides=value) == PREFIX + OVERRIDES + problem


def test_bad_json_overrides_file(tmp_path):
    path = tmp_path / "o.json"
    path.write_text("{'single': 'quotes'}")
    assert error_of(config_overrides=str(path)) == PREFIX + OVERRIDES + (
        f"the logging overrides file '{path}' is not valid JSON: Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_yaml_bomb_is_not_expanded():
    # aliases are references, not copies: loading stays cheap
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c]\n"
    assert load_mapping(bomb)["d"][0][0][0] == ["x", "x"]


def test_logfile_validation(tmp_path):
    assert error_of(logfile=tmp_path) == (
        PREFIX + "logfile (--log-file, environment variable DE_LOGGING_LOGFILE): "
        f"the log file '{tmp_path}' is a directory; give a file"
    )
    missing = tmp_path / "no" / "x.log"
    assert error_of(logfile=missing) == (
        PREFIX + "logfile (--log-file, environment variable DE_LOGGING_LOGFILE): "
        f"the directory of the log file '{missing}' does not exist; create it first"
    )


def test_unknown_option():
    assert error_of(colour=True) == (
        PREFIX + "unknown option 'colour'; valid options are config_file, "
        "config_overrides, level, logfile, merge_config"
    )


def test_configure_logging_writes_the_log_file(tmp_path, restore_logging):
    logfile = tmp_path / "dasf.log"
    LoggingConfig(level="DEBUG", logfile=logfile).configure_logging()
    logger = logging.getLogger("dasf_geo.tests")
    logger.debug("debug line")
    for handler in logging.getLogger("dasf_geo").handlers:
        handler.flush()
    text = logfile.read_text()
    assert "DEBUG - [dasf_geo.tests.test_configure_logging_writes_the_log_file]" in text
    assert text.rstrip().endswith("debug line")
    assert logging.getLogger("dasf_geo").level == logging.DEBUG
    assert logging.getLogger("dasf_geo").propagate is False


def test_configure_logging_to_stderr(capfd, restore_logging):
    LoggingConfig().configure_logging()
    logging.getLogger("dasf_geo.x").info("visible")
    logging.getLogger("dasf_geo.x").debug("hidden")
    out, err = capfd.readouterr()
    assert out == ""
    assert "INFO - [dasf_geo.x]: visible" in err
    assert "hidden" not in err


def test_merge_config_is_recursive():
    base = {"a": {"b": 1, "c": {"d": 2}}, "l": [1]}
    update = {"a": {"c": {"e": 3}}, "l": [2], "n": None}
    assert merge_config(base, update) == {
        "a": {"b": 1, "c": {"d": 2, "e": 3}},
        "l": [2],
        "n": None,
    }


def test_logfile_handler_is_added_to_every_logger(tmp_path):
    data = LoggingConfig(logfile=tmp_path / "x.log").config_dict
    handler = data["handlers"]["dasf_geo_file_handler"]
    assert handler["class"] == "logging.handlers.RotatingFileHandler"
    assert handler["filename"] == os.fspath(tmp_path / "x.log")
    for logger in data["loggers"].values():
        assert "dasf_geo_file_handler" in logger["handlers"]


def test_empty_environment_variables_count_as_unset(monkeypatch):
    monkeypatch.setenv("DE_LOGGING_LEVEL", "")
    monkeypatch.setenv("DE_LOGGING_CONFIG_FILE", "")
    config = LoggingConfig()
    assert (config.level, config.config_file) == (None, DEFAULT_CONFIG_FILE)
