"""Token authorisation for the broker (``dasf-geo broker --auth FILE``).

The auth file (YAML or JSON; JSON is YAML) maps tokens to the topics they
may produce to and consume from::

    tokens:
      - name: my-backend            # a label for logs
        token: "a-long-random-secret"   # or sha256: "<hex digest of the token>"
        produce: ["my-topic_*"]     # replies go to the callers' response topics
        consume: ["my-topic"]
      - name: caller
        sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        produce: ["my-topic"]
        consume: ["my-topic_*"]
    anonymous:                      # optional: what clients without a token may do
      consume: ["public-news"]

Patterns are shell-style globs (``*``, ``?``, ``[…]``). A pattern without
``/`` matches the topic's own name; one with ``/`` matches
``tenant/namespace/topic`` (e.g. ``public/default/*``). Plain-layout topics
are ``public/default/<topic>``.

Clients present a token as the ``token`` query parameter (Pulsar, browsers)
or in an ``Authorization: Bearer <token>`` or ``Authorization: Token
<token>`` header (Pulsar, dasf-broker-django).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dasf_geo.broker.names import TopicName
from dasf_geo.exceptions import ConfigurationError

__all__ = ["AuthConfig", "Grant", "token_from_request"]

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_KEYS = {"name", "token", "sha256", "produce", "consume"}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Grant:
    """What one token (or anonymous clients) may do.

    Attributes:
        name: a label for logs and error messages (never the token).
        produce: glob patterns of topics it may produce to.
        consume: glob patterns of topics it may consume from.
    """

    name: str
    produce: tuple[str, ...] = ()
    consume: tuple[str, ...] = ()

    def allows(self, action: str, topic: TopicName) -> bool:
        """True if this grant may ``action`` (``produce``/``consume``) ``topic``."""
        patterns = self.produce if action == "produce" else self.consume
        for pattern in patterns:
            target = topic.path if "/" in pattern else topic.local
            if fnmatch.fnmatchcase(target, pattern):
                return True
        return False


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigurationError(
            f"{where} must be a list of topic patterns (non-empty strings), got "
            f"{value!r:.80}"
        )
    return tuple(value)


class AuthConfig:
    """The tokens a broker accepts and what each may do.

    Build it with :meth:`load` (a file) or :meth:`from_dict`.
    """

    def __init__(self, grants: Mapping[str, Grant], anonymous: Grant | None = None):
        self._grants = dict(grants)  # sha256 hex digest -> grant
        self.anonymous = anonymous

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AuthConfig:
        """Read an auth file (YAML or JSON).

        Raises:
            ConfigurationError: the file cannot be read or parsed, or an
                entry is malformed; the message names the file and entry.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(
                f"cannot read the auth file {path}: {exc}"
            ) from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(
                f"the auth file {path} is not valid YAML or JSON: "
                f"{' '.join(str(exc).split())}"
            ) from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "the auth config") -> AuthConfig:
        """Build the config from parsed YAML/JSON ``data``.

        Raises:
            ConfigurationError: ``data`` has the wrong shape; the message
                names ``source``, the entry and the field.
        """
        if not isinstance(data, dict):
            raise ConfigurationError(
                f"{source} must be a mapping with a 'tokens' list, got "
                f"{type(data).__name__}"
            )
        unknown = set(data) - {"tokens", "anonymous"}
        if unknown:
            raise ConfigurationError(
                f"{source} has unknown keys {sorted(map(str, unknown))}: use "
                "'tokens' and 'anonymous'"
            )
        tokens = data.get("tokens") or []
        if not isinstance(tokens, list):
            raise ConfigurationError(
                f"'tokens' in {source} must be a list, got {type(tokens).__name__}"
            )
        grants: dict[str, Grant] = {}
        for i, entry in enumerate(tokens):
            where = f"tokens[{i}] in {source}"
            if not isinstance(entry, dict):
                raise ConfigurationError(
                    f"{where} must be a mapping with 'token' (or 'sha256'), "
                    f"'produce' and 'consume', got {type(entry).__name__}"
                )
            extra = set(entry) - _KEYS
            if extra:
                raise ConfigurationError(
                    f"{where} has unknown keys {sorted(map(str, extra))}: use "
                    + ", ".join(sorted(_KEYS))
                )
            token, digest = entry.get("token"), entry.get("sha256")
            if (token is None) == (digest is None):
                raise ConfigurationError(
                    f"{where} needs exactly one of 'token' or 'sha256'"
                )
            if token is not None:
                if not isinstance(token, str) or len(token) < 8:
                    raise ConfigurationError(
                        f"'token' of {where} must be a string of at least 8 characters"
                    )
                digest = _digest(token)
            elif not isinstance(digest, str) or not _HEX64.match(digest.lower()):
                raise ConfigurationError(
                    f"'sha256' of {where} must be the 64 hex digits of the token's "
                    "SHA-256 digest"
                )
            digest = digest.lower()
            name = entry.get("name", f"token {i}")
            if not isinstance(name, str):
                raise ConfigurationError(f"'name' of {where} must be a string")
            if digest in grants:
                raise ConfigurationError(f"{where} repeats a token of an earlier entry")
            grants[digest] = Grant(
                name,
                _patterns(entry.get("produce"), f"'produce' of {where}"),
                _patterns(entry.get("consume"), f"'consume' of {where}"),
            )
        anonymous = None
        anon = data.get("anonymous")
        if anon is not None:
            if not isinstance(anon, dict) or set(anon) - {"produce", "consume"}:
                raise ConfigurationError(
                    f"'anonymous' in {source} must be a mapping with 'produce' and "
                    "'consume' lists"
                )
            anonymous = Grant(
                "anonymous",
                _patterns(anon.get("produce"), f"'anonymous.produce' in {source}"),
                _patterns(anon.get("consume"), f"'anonymous.consume' in {source}"),
            )
        return cls(grants, anonymous)

    def identify(self, token: str | None) -> Grant | None:
        """The grant of ``token`` (anonymous grant if None), or None if unknown."""
        if token is None:
            return self.anonymous
        digest = _digest(token)
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                return grant
        return None

    def __repr__(self) -> str:
        return f"AuthConfig({len(self._grants)} tokens, anonymous={self.anonymous})"


def token_from_request(
    headers: Mapping[str, str], params: Mapping[str, str]
) -> str | None:
    """The token a client presents, from the query or the headers.

    ``token`` query parameter first, then ``Authorization: Bearer|Token <t>``.
    Other authorisation schemes count as no token.
    """
    token = params.get("token")
    if token:
        return token
    value = headers.get("Authorization") or headers.get("authorization")
    if value:
        scheme, _, rest = value.strip().partition(" ")
        if scheme.lower() in ("bearer", "token") and rest.strip():
            return rest.strip()
    return None
