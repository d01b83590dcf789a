"""Listing 6 of the DASF documentation: a class as a backend module.

A request names the constructor arguments and the method to call::

    {"class_name": "HelloWorld", "message": "Hi",
     "function": {"func_name": "repeat_message", "repeat": 2}}
"""

from typing import List  # noqa: UP035  (as in the DASF documentation)

from dasf_geo import main

__all__ = ["HelloWorld"]


class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    def repeat_message(self, repeat: int) -> List[str]:  # noqa: UP006
        return [self.message] * repeat


if __name__ == "__main__":
    main(messaging_config=dict(topic="hello-world-class-topic"))
