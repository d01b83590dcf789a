"""daeploy's documented service patterns, with only the imports changed.

Every line below the imports is as daeploy's documentation writes it: an
entrypoint that reads a parameter, a monitored entrypoint with array data
types, a stored variable, periodic tasks, a notification and a call to
another service (here: this service itself, by its name). The imports map
``daeploy`` -> ``dasf_geo``:

================================  ==========================================
daeploy                           dasf_geo
================================  ==========================================
``from daeploy import service``   ``from dasf_geo import service``
``daeploy.communication``         ``dasf_geo.service.communication``
``daeploy.utilities``             ``dasf_geo.service.utilities``
``daeploy.data_types``            ``dasf_geo.service.data_types``
================================  ==========================================

Run it with an embedded broker (and the HTTP gateway, when installed)::

    python examples/daeploy_service.py

and call it from another terminal::

    dasf-geo call daeploy_service hello name=World --broker ws://127.0.0.1:8080
"""

import logging

import numpy as np

from dasf_geo import service
from dasf_geo.service.communication import Severity, call_service, notify
from dasf_geo.service.data_types import ArrayInput, ArrayOutput
from dasf_geo.service.utilities import get_service_name

logger = logging.getLogger(__name__)

service.add_parameter("greeting_phrase", "Hello")
service.add_parameter("counter_limit", 3, monitor=True)

counter = 0


@service.entrypoint
def hello(name: str) -> str:
    """Greet someone with the greeting phrase parameter."""
    greeting_phrase = service.get_parameter("greeting_phrase")
    logger.info(f"Greeting someone with the name: {name}")
    return f"{greeting_phrase} {name}"


@service.entrypoint(monitor=True)
def scale(array: ArrayInput, factor: float = 2.0) -> ArrayOutput:
    """Multiply an array (nested lists) by a factor."""
    return np.asarray(array) * factor


@service.call_every(seconds=1)
def count():
    """Count, store the count and notify when it reaches the limit."""
    global counter
    counter += 1
    service.store(counter=counter)
    if counter == service.get_parameter("counter_limit"):
        notify(
            msg=f"The counter reached {counter}",
            severity=Severity.WARNING,
            dashboard=True,
            emails=None,
            timer=60,
        )


@service.call_every(seconds=2, wait_first=True)
def greet_myself():
    """Call the hello entrypoint as another service would."""
    greeting = call_service(
        service_name=get_service_name(),
        entrypoint_name="hello",
        arguments={"name": "myself"},
    )
    service.store(last_greeting=greeting)


if __name__ == "__main__":
    service.run()
