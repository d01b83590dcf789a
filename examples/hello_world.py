"""Listing 2 of the DASF documentation: a function as a backend module.

Run ``python examples/hello_world.py schema`` to see its JSON schema,
``python examples/hello_world.py generate > client.py`` for a client module
and ``python examples/hello_world.py listen`` to serve it through a broker.
"""

from dasf_geo import main

__all__ = ["hello_world"]


def hello_world() -> str:
    return "HelloWorld"


if __name__ == "__main__":
    main(messaging_config=dict(topic="hello-world-topic"))
