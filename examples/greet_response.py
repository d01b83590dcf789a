"""Listing 9 of the DASF documentation: a registered pydantic return type.

``GreetResponse`` is registered with ``@registry.register_type``, so that
it can be returned by ``greet`` and is reproduced in generated clients.
"""

import datetime
from typing import List  # noqa: UP035  (as in the DASF documentation)

from pydantic import BaseModel

from dasf_geo import configure, main, registry

__all__ = ["HelloWorld"]


@registry.register_type
class GreetResponse(BaseModel):
    message: str
    greetings: List[str]  # noqa: UP006
    greeting_time: datetime.datetime


@configure(methods=["repeat_message", "greet"])
class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> List[str]:  # noqa: UP006
        return [self.message] * repeat

    @configure(field_params={"repeat": {"ge": 0}})
    def greet(self, repeat: int, greet_message: str) -> GreetResponse:
        greetings: List[str] = [greet_message] * repeat  # noqa: UP006
        return GreetResponse(
            message=self.message,
            greetings=greetings,
            greeting_time=datetime.datetime.now(),
        )

    def unexposed_method(self) -> str:
        return self.message


if __name__ == "__main__":
    main(messaging_config=dict(topic="hello-world-topic"))
