"""Tests of main() and the per-module command line, run in this process.

The backend module served here is this test module itself (its members
``double`` and ``Greeter`` below); the examples are run as scripts in
tests/test_examples.py.
"""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from unittest import mock

import pytest

from dasf_geo.cli.module import get_parser, main
from dasf_geo.config import PulsarConfig, WebsocketURLConfig
from dasf_geo.exceptions import ConfigurationError
from tests.conftest import free_port, timeout

MODULE = __name__


def double(x: int) -> int:
    """Double a number.

    Args:
        x: the number.
    """
    return 2 * x


def explode(text: str) -> str:
    """Always fail."""
    raise ValueError(f"cannot explode {text}")


class Greeter:
    """Greets people."""

    def __init__(self, greeting: str):
        self.greeting = greeting

    def greet(self, name: str) -> str:
        """Greet ``name``."""
        return f"{self.greeting}, {name}!"


MEMBERS = ["double", "explode", "Greeter"]


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    """No DE_* variables from outside; restore the loggers main() configures."""
    for key in list(os.environ):
        if key.upper().startswith(("DE_BACKEND_", "DE_LOGGING_")):
            monkeypatch.delenv(key)
    saved = {}
    for name in ("dasf_geo", "websockets"):
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def run(*args: str, **kwargs):
    """main() on this module with ``args`` as the command line (sys.argv)."""
    kwargs.setdefault("members", MEMBERS)
    with mock.patch.object(sys, "argv", ["module.py", *args]):
        return main(MODULE, **kwargs)


def fails(capsys, *args: str, status: int = 2, **kwargs) -> str:
    """Run main() expecting SystemExit(status); return the last stderr line."""
    with pytest.raises(SystemExit) as info:
        run(*args, **kwargs)
    assert info.value.code == status
    err = capsys.readouterr().err
    return err.strip().splitlines()[-1]


def messaging(model):
    return model.backend_config.messaging_config


# ------------------------------------------------------------------ parser


def test_parser_knows_every_documented_option():
    parser = get_parser()
    ns = parser.parse_args(
        [
            "-m", "mod", "--members", "a", "b", "-d", "doc", "--debug", "-t", "topic",
            "--header", "{}", "-H", "h", "-p", "1", "--persistent", "persistent",
            "--tenant", "tn", "--namespace", "ns", "--max-workers", "2",
            "--queue-size", "3", "--max-payload-size", "100",
            "--producer-keep-alive", "5", "--producer-connection-timeout", "6",
            "--websocket-url", "ws://w", "--producer-url", "ws://p",
            "--consumer-url", "ws://c", "--log-config", "f.yaml",
            "--log-level", "10", "--log-file", "x.log", "--merge-log-config",
            "--log-overrides", "a: 1",
            "generate", "-l", "100", "--no-formatters", "--no-isort",
            "--no-black", "--no-autoflake",
        ]
    )  # fmt: skip
    values = vars(ns)
    assert values["module_name"] == "mod"
    assert values["doc"] == "doc"
    assert values["debug"] is True
    assert values["members"] == ["a", "b"]
    assert {k: v for k, v in values.items() if k.startswith("messaging.")} == {
        "messaging.topic": "topic",
        "messaging.header": "{}",
        "messaging.host": "h",
        "messaging.port": "1",
        "messaging.persistent": "persistent",
        "messaging.tenant": "tn",
        "messaging.namespace": "ns",
        "messaging.max_workers": "2",
        "messaging.queue_size": "3",
        "messaging.max_payload_size": "100",
        "messaging.producer_keep_alive": "5",
        "messaging.producer_connection_timeout": "6",
        "messaging.websocket_url": "ws://w",
        "messaging.producer_url": "ws://p",
        "messaging.consumer_url": "ws://c",
    }
    assert {k: v for k, v in values.items() if k.startswith("log.")} == {
        "log.config_file": "f.yaml",
        "log.level": "10",
        "log.logfile": "x.log",
        "log.merge_config": True,
        "log.config_overrides": "a: 1",
    }
    assert values["command"] == "generate"
    assert values["line_length"] == 100
    assert not any(
        values[k] for k in ("use_formatters", "use_isort", "use_black", "use_autoflake")
    )


def test_reference_spellings_are_accepted():
    ns = get_parser().parse_args(
        ["--max_payload_size", "7", "--queue_size", "8", "schema", "-i", "2"]
    )
    assert vars(ns)["messaging.max_payload_size"] == "7"
    assert vars(ns)["messaging.queue_size"] == "8"
    assert ns.indent == 2


def test_unset_options_are_absent():
    ns = get_parser().parse_args(["listen"])
    assert vars(ns) == {"command": "listen"}


def test_help_lists_commands_and_groups(capsys):
    with pytest.raises(SystemExit) as info:
        get_parser(config={"messaging_config": {"topic": "my-topic"}}).parse_args(
            ["-h"]
        )
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in (
        "test-connect", "listen", "schema", "send-request", "compute", "shell",
        "generate", "Pulsar connection options", "WebSocket URL options",
        "Logging options", "Default: my-topic.", "Default: 8080.",
    ):  # fmt: skip
        assert text in out
    assert "Undefined" not in out


# ---------------------------------------------------------------- commands


def test_no_command_returns_the_model(capsys):
    model = run(messaging_config={"topic": "cli-test"})
    assert model.model_config["title"] == "cli-test"
    assert messaging(model).topic == "cli-test"
    assert capsys.readouterr().out == ""


def test_schema(capsys):
    model = run("schema", messaging_config={"topic": "cli-test"})
    out = capsys.readouterr().out
    assert json.loads(out) == model.model_json_schema()
    assert "\n" not in out.strip()
    run("-t", "cli-test", "schema", "-i", "2")
    out = capsys.readouterr().out
    assert out.startswith('{\n  "$defs"')


def test_generate_gives_valid_python(capsys):
    run("-t", "cli-test", "generate", "--no-formatters")
    code = capsys.readouterr().out
    compile(code, "client.py", "exec")
    assert "def double(x: int) -> int:" in code
    assert "class Greeter" in code
    assert '"topic": "cli-test"' in code


def test_compute_inline_json(capsys):
    run("-t", "t", "compute", '{"func_name": "double", "x": 21}')
    assert capsys.readouterr().out == "42\n"


def test_compute_files_and_stdin(capsys, tmp_path, monkeypatch):
    request = {
        "class_name": "Greeter",
        "greeting": "Hello",
        "function": {"func_name": "greet", "name": "Ada"},
    }
    json_file = tmp_path / "request.json"
    json_file.write_text(json.dumps(request))
    run("-t", "t", "compute", str(json_file))
    assert capsys.readouterr().out == '"Hello, Ada!"\n'
    yaml_file = tmp_path / "request.yaml"
    yaml_file.write_text(
        "class_name: Greeter\ngreeting: Hi\nfunction: {func_name: greet, name: Bo}\n"
    )
    run("-t", "t", "compute", str(yaml_file))
    assert capsys.readouterr().out == '"Hi, Bo!"\n'
    stdin = io.TextIOWrapper(io.BytesIO(b'{"func_name": "double", "x": 1}'))
    monkeypatch.setattr(sys, "stdin", stdin)
    run("-t", "t", "compute", "-")
    assert capsys.readouterr().out == "2\n"


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        (
            '{"func_name": "double", "x": "many"}',
            "invalid request: double.x: Input should be a valid integer, unable "
            "to parse string as an integer (got 'many')",
        ),
        (
            '{"func_name": "nope"}',
            "invalid request: Unknown function or class: the request needs "
            "'func_name' or 'class_name' set to one of 'double', 'explode', "
            "'Greeter' (got {'func_name': 'nope'})",
        ),
    ],
)
def test_bad_requests_exit_1(capsys, request_text, message):
    line = fails(capsys, "-t", "t", "compute", request_text, status=1)
    assert line == "module.py: error: " + message


def test_failing_function_exit_1_without_traceback(capsys):
    with pytest.raises(SystemExit) as info:
        run("-t", "t", "compute", '{"func_name": "explode", "text": "x"}')
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == "module.py: error: " + (
        "the request failed with ValueError: cannot explode x (run with --debug "
        "for the traceback)"
    )


def test_debug_raises_the_original_error():
    with pytest.raises(ValueError, match="cannot explode x"):
        run("--debug", "-t", "t", "compute", '{"func_name": "explode", "text": "x"}')
    with pytest.raises(ConfigurationError, match="queue_size"):
        run("--debug", "-t", "t", "--max-workers", "3", "--queue-size", "1")


@pytest.mark.parametrize(
    ("request_text", "message"),
    [
        (
            "missing.json",
            "the request file 'missing.json' does not exist; give a JSON or YAML "
            "file with the request, '-' for standard input, or the request "
            'itself, e.g. \'{"func_name": "hello_world"}\'',
        ),
        (
            "{func_name: [",
            "the request '{func_name: [' is not valid YAML: expected the node "
            "content, but found '<stream end>'",
        ),
    ],
)
def test_bad_request_argument_exit_2(capsys, request_text, message):
    line = fails(capsys, "-t", "t", "compute", request_text)
    assert line == "module.py: error: " + message


def test_yaml_request_file_must_be_a_mapping(capsys, tmp_path):
    path = tmp_path / "r.yml"
    path.write_text("- 1\n- 2\n")
    line = fails(capsys, "-t", "t", "compute", str(path))
    assert line == "module.py: error: " + (
        f"the request file '{path}' must hold a mapping such as "
        '{"func_name": "hello_world"}, got list'
    )


# -------------------------------------------------------------- precedence


def test_environment_is_the_lowest_precedence(monkeypatch):
    monkeypatch.setenv("DE_BACKEND_TOPIC", "env-topic")
    monkeypatch.setenv("DE_BACKEND_HOST", "env-host")
    monkeypatch.setenv("DE_BACKEND_PORT", "1111")
    monkeypatch.setenv("DE_LOGGING_LEVEL", "ERROR")
    model = run()
    config = messaging(model)
    assert (config.topic, config.host, config.port) == ("env-topic", "env-host", 1111)
    assert model.backend_config.log_config.level == 40

    model = run(messaging_config={"topic": "main-topic", "port": 2222})
    config = messaging(model)
    assert (config.topic, config.host, config.port) == ("main-topic", "env-host", 2222)

    model = run(
        "-t", "cli-topic", "-p", "3333", "--log-level", "DEBUG",
        messaging_config={"topic": "main-topic", "port": 2222},
        log_config={"level": "INFO"},
    )  # fmt: skip
    config = messaging(model)
    assert (config.topic, config.host, config.port) == ("cli-topic", "env-host", 3333)
    assert model.backend_config.log_config.level == 10


def test_main_accepts_config_objects_and_shortcuts():
    model = run(messaging_config=PulsarConfig(topic="obj", port=1234), debug=True)
    assert (messaging(model).topic, messaging(model).port) == ("obj", 1234)
    assert model.backend_config.debug is True
    model = run("-p", "4321", topic="short", host="example.org")
    assert (messaging(model).topic, messaging(model).host) == ("short", "example.org")
    assert messaging(model).port == 4321


def test_main_accepts_a_module_config():
    from dasf_geo.config import ModuleConfig

    base = ModuleConfig(
        messaging_config=PulsarConfig(topic="from-config"), doc="Documented."
    )
    model = main(MODULE, "-d", "Overridden.", config=base, members=["double"])
    assert messaging(model).topic == "from-config"
    assert model.backend_config.doc == "Overridden."


def test_cli_flags_override_main_debug_and_members(capsys):
    model = run("--debug", "--members", "double", "-t", "t", debug=False)
    assert model.backend_config.debug is True
    run("--members", "double", "-t", "t", "schema")
    schema = json.loads(capsys.readouterr().out)
    assert set(schema["$defs"]) == {"FuncDouble"}


def test_websocket_url_selection(monkeypatch):
    model = run("-t", "t", "--websocket-url", "ws://cli:1/ws")
    assert isinstance(messaging(model), WebsocketURLConfig)
    assert messaging(model).get_topic_url("t") == "ws://cli:1/ws/t"
    # a websocket URL on the command line drops main()'s Pulsar options
    model = run("--websocket-url", "ws://cli:1/ws", topic="t", host="main-host")
    assert isinstance(messaging(model), WebsocketURLConfig)
    # and a Pulsar option on the command line drops main()'s URL
    model = run("-H", "cli-host", topic="t", websocket_url="ws://main/ws")
    assert isinstance(messaging(model), PulsarConfig)
    assert messaging(model).host == "cli-host"
    # producer and consumer URLs alone select the URL config too
    model = run(
        "-t", "t", "--producer-url", "ws://p/in", "--consumer-url", "ws://c/out"
    )  # fmt: skip
    assert messaging(model).get_topic_url("t", "s") == "ws://c/out/t/s"
    # from the environment
    monkeypatch.setenv("DE_BACKEND_WEBSOCKET_URL", "ws://env/ws")
    model = run(topic="t")
    assert messaging(model).get_topic_url("t") == "ws://env/ws/t"
    # unless main() or the command line ask for Pulsar
    model = run("-p", "9", topic="t")
    assert isinstance(messaging(model), PulsarConfig)


# ------------------------------------------------------------- bad options


PORT_PREFIX = (
    "invalid PulsarConfig: port (-p/--port, environment variable DE_BACKEND_PORT): "
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("-p", "99999"),
            PORT_PREFIX + "Input should be less than or equal to 65535 (got '99999')",
        ),
        (
            ("-p", "http"),
            PORT_PREFIX + "the port must be a whole number between "
            "1 and 65535, got 'http'",
        ),
        (
            ("--max-workers", "4", "--queue-size", "2"),
            "invalid PulsarConfig: "
            "queue_size (2) must be at least max_workers (4): raise --queue-size or "
            "lower --max-workers",
        ),
        (
            ("--header", "{bad"),
            "invalid PulsarConfig: header (--header, "
            "environment variable DE_BACKEND_HEADER): the header must be a JSON "
            'object such as \'{"authorization": "Token ..."}\', but it is not '
            "valid JSON (Expecting property name enclosed in double quotes: line 1 "
            "column 2 (char 1))",
        ),
        (
            ("--log-level", "LOUD"),
            "invalid LoggingConfig: level (--log-level, "
            "environment variable DE_LOGGING_LEVEL): unknown log level 'LOUD': use "
            "DEBUG, INFO, WARNING, ERROR or CRITICAL, or a number between 1 and 50 "
            "(10 is DEBUG, 50 is CRITICAL)",
        ),
        (
            ("--log-config", "/no/such.yaml"),
            "invalid LoggingConfig: config_file "
            "(--log-config, environment variable DE_LOGGING_CONFIG_FILE): the log "
            "config file '/no/such.yaml' does not exist; give an existing YAML file "
            "in logging.config.dictConfig format",
        ),
        (
            ("-H", "h", "--websocket-url", "ws://x"),
            "give either the Pulsar "
            "options (--host) or the websocket URL options (--websocket-url), not "
            "both",
        ),
        (
            ("--websocket-url", "http://x"),
            "invalid WebsocketURLConfig: "
            "websocket_url (--websocket-url, environment variable "
            "DE_BACKEND_WEBSOCKET_URL): the websocket url 'http://x' uses the scheme "
            "'http'; only ws:// and wss:// work; expected a URL such as "
            "'ws://localhost:8080/ws/v2/consumer/non-persistent/public/default'",
        ),
        (
            ("--max-payload-size", "2"),
            "invalid PulsarConfig: max_payload_size "
            "(--max-payload-size, environment variable DE_BACKEND_MAX_PAYLOAD_SIZE): "
            "Input should be greater than or equal to 4 (got '2')",
        ),
        (
            ("--producer-keep-alive", "soon"),
            "invalid PulsarConfig: "
            "producer_keep_alive (--producer-keep-alive, environment variable "
            "DE_BACKEND_PRODUCER_KEEP_ALIVE): Input should be a valid integer, "
            "unable to parse string as an integer (got 'soon')",
        ),
        (
            ("-m", "no_such_module_xyz"),
            "cannot import the backend module "
            "'no_such_module_xyz': No module named 'no_such_module_xyz'",
        ),
        (
            ("-t", "a b"),
            "invalid PulsarConfig: topic (-t/--topic, environment "
            "variable DE_BACKEND_TOPIC): invalid topic name 'a b': use letters, "
            "digits and '_', '-', '=', '.', starting with a letter, digit or '_'",
        ),
    ],
)
def test_bad_options_exit_2(capsys, args, message):
    line = fails(capsys, "-t", "t", *args, "schema")
    assert line == "module.py: error: " + message


def test_missing_topic(capsys):
    line = fails(capsys, "schema")
    assert line == "module.py: error: " + (
        "invalid PulsarConfig: no topic given: set it with -t/--topic, "
        "main(messaging_config=dict(topic=...)), the DE_BACKEND_TOPIC "
        "environment variable or PulsarConfig(topic=...)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("schema", "-i", "x"),
            "module.py schema: error: argument -i/--indent: the indent must be a "
            "whole number of spaces, got 'x'",
        ),
        (
            ("schema", "-i", "99"),
            "module.py schema: error: argument -i/--indent: the indent must be "
            "between 0 and 32 spaces, got 99",
        ),
        (
            ("generate", "-l", "3"),
            "module.py generate: error: argument -l/--line-length: the line length "
            "must be between 10 and 10000, got 3",
        ),
        (("--bogus", "schema"), "module.py: error: unrecognized arguments: --bogus"),
    ],
)
def test_argparse_errors_exit_2(capsys, args, message):
    line = fails(capsys, "-t", "t", *args)
    assert line == message


def test_unknown_command_exit_2(capsys):
    line = fails(capsys, "-t", "t", "frobnicate")
    # argparse quotes the choices differently between Python versions
    assert line.startswith(
        "module.py: error: argument COMMAND: invalid choice: 'frobnicate' (choose from "
    )
    assert "test-connect" in line and "generate" in line


def test_main_parses_given_args_instead_of_sys_argv(capsys):
    with mock.patch.object(sys, "argv", ["module.py", "--bogus"]):
        main(
            MODULE,
            "-t",
            "t",
            "compute",
            '{"func_name": "double", "x": 2}',
            members=["double"],
        )
    assert capsys.readouterr().out == "4\n"


def test_bad_main_keywords_exit_2(capsys):
    line = fails(capsys, "schema", topic="t", colour="blue")
    assert line.startswith(
        "module.py: error: "
        "invalid main() configuration: unknown option 'colour'; valid options are "
    )
    line = fails(capsys, "schema", messaging_config="t")
    assert line == "module.py: error: " + (
        "main(): messaging_config must be a dict or a config object, got str 't'"
    )


def test_hostile_option_values_are_shortened(capsys):
    line = fails(capsys, "-t", "t", "-H", "x y" * 10_000, "schema")
    assert len(line) < 500


# ---------------------------------------------------------- broker commands


def test_test_connect_fails_without_broker(capsys):
    port = free_port()
    with pytest.raises(SystemExit) as info:
        run(
            "-t", "t", "-H", "127.0.0.1", "-p", str(port),
            "--producer-connection-timeout", "5", "test-connect",
        )  # fmt: skip
    assert info.value.code == 1
    out = capsys.readouterr().out
    assert out.startswith("connection test failed: ")
    assert f"127.0.0.1:{port}" in out


def test_test_connect_succeeds_with_broker(capsys):
    from dasf_geo.broker import EmbeddedBroker

    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        port = broker.url.rsplit(":", 1)[1]
        model = run("-t", "cli-connect", "-H", "127.0.0.1", "-p", port, "test-connect")
    assert model is not None
    out = capsys.readouterr().out
    assert out.startswith("connection test succeeded: consumer and producer of topic ")


def test_test_connect_checks_every_broker_front(capsys):
    from dasf_geo.broker import EmbeddedBroker

    dead = free_port()

    def urls(kind: str, *ports: object) -> str:
        return ",".join(
            f"ws://127.0.0.1:{p}/ws/v2/{kind}/persistent/public/default" for p in ports
        )

    with (
        EmbeddedBroker(host="127.0.0.1", port=0) as broker,
        EmbeddedBroker(host="127.0.0.1", port=0) as other,
    ):
        port = broker.url.rsplit(":", 1)[1]
        port2 = other.url.rsplit(":", 1)[1]
        run(
            "-t", "cli-fronts", "--producer-connection-timeout", "5",
            "--producer-url", urls("producer", port, port2),
            "--consumer-url", urls("consumer", port, port2),
            "test-connect",
        )  # fmt: skip
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("front 1 of 2: ok, ws://127.0.0.1:")
        assert out[1].startswith("front 2 of 2: ok, ws://127.0.0.1:")
        assert out[2] == (
            "connection test succeeded: consumer and producer of topic "
            "'cli-fronts' on all 2 broker fronts"
        )
        with pytest.raises(SystemExit) as info:
            run(
                "-t", "cli-fronts", "--producer-connection-timeout", "5",
                "--producer-url", urls("producer", port, dead),
                "--consumer-url", urls("consumer", port, dead),
                "test-connect",
            )  # fmt: skip
    assert info.value.code == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("front 1 of 2: ok")
    assert out[1].startswith("front 2 of 2: failed: ") and f":{dead}" in out[1]
    assert out[2] == (
        "connection test failed: 1 of 2 broker fronts refused the consumer and "
        "producer of topic 'cli-fronts' (the backend runs on the others, but "
        "cannot fail over to those)"
    )


def test_send_request_without_broker_exit_1(capsys):
    port = free_port()
    line = fails(
        capsys,
        "-t", "t", "-H", "127.0.0.1", "-p", str(port),
        "--producer-connection-timeout", "5",
        "send-request", '{"func_name": "double", "x": 1}',
        status=1,
    )  # fmt: skip
    assert f"127.0.0.1:{port}" in line


def test_shell_gives_the_model(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # the plain Python shell
    monkeypatch.setattr(sys, "stdin", io.StringIO('print("TITLE", Model.__name__)\n'))
    run("-t", "shell-topic", "shell")
    out = capsys.readouterr().out
    assert f"TITLE {MODULE}" in out


def test_logging_options_are_applied(tmp_path):
    logfile = tmp_path / "module.log"
    model = run("-t", "t", "--log-level", "DEBUG", "--log-file", str(logfile))
    assert model.backend_config.log_config.logfile == logfile
    logging.getLogger("dasf_geo.tests").debug("from the test")
    for handler in logging.getLogger("dasf_geo").handlers:
        handler.flush()
    assert logfile.read_text().rstrip().endswith("from the test")
    for handler in logging.getLogger("dasf_geo").handlers:
        handler.close()


def test_log_overrides_and_merge(tmp_path):
    config_file = tmp_path / "log.yaml"
    config_file.write_text("version: 1\nloggers:\n  mine: {level: ERROR}\n")
    model = run(
        "-t", "t", "--log-config", str(config_file), "--merge-log-config",
        "--log-overrides", "loggers: {mine: {level: WARNING}}",
    )  # fmt: skip
    settings = model.backend_config.log_config.config_dict
    assert settings["loggers"]["mine"]["level"] == "WARNING"
    assert "dasf_geo" in settings["loggers"]
    assert logging.getLogger("mine").level == logging.WARNING


def test_listen_without_broker_exit_1(capsys):
    port = free_port()
    line = fails(
        capsys,
        "-t", "t", "-H", "127.0.0.1", "-p", str(port),
        "--producer-connection-timeout", "5", "listen",
        status=1,
    )  # fmt: skip
    assert line.startswith(
        f"module.py: error: cannot connect to ws://127.0.0.1:{port}/"
    )


def test_send_request_times_out_without_backend(capsys):
    from dasf_geo.broker import EmbeddedBroker
    from dasf_geo.transport import client

    with EmbeddedBroker(host="127.0.0.1", port=0) as broker:
        port = broker.url.rsplit(":", 1)[1]
        try:
            line = fails(
                capsys,
                "-t", "nobody-listens", "-H", "127.0.0.1", "-p", port,
                "send-request", "--timeout", str(timeout(0.5)),
                '{"func_name": "double", "x": 1}',
                status=1,
            )  # fmt: skip
        finally:
            client.close_clients()  # the cached caller, before the broker stops
    assert line.startswith("module.py: error: no reply from topic 'nobody-listens' to ")
    assert "double" in line


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("soon", "the timeout must be a number of seconds, got 'soon'"),
        ("0", "the timeout must be between 0 and 604800 seconds, got '0'"),
        ("nan", "the timeout must be between 0 and 604800 seconds, got 'nan'"),
    ],
)
def test_bad_timeout_exit_2(capsys, value, problem):
    line = fails(capsys, "-t", "t", "send-request", "--timeout", value, "{}")
    assert line == f"module.py send-request: error: argument --timeout: {problem}"
