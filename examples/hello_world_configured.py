"""Listing 7 of the DASF documentation: a class configured with ``@configure``.

Only ``repeat_message`` is exposed, and its ``repeat`` argument must not be
negative: a request with ``"repeat": -1`` is rejected before the method runs.
"""

from typing import List  # noqa: UP035  (as in the DASF documentation)

from dasf_geo import configure, main

__all__ = ["HelloWorld"]


@configure(methods=["repeat_message"])
class HelloWorld:
    def __init__(self, message: str):
        self.message = message

    @configure(field_params={"repeat": {"ge": 0}})
    def repeat_message(self, repeat: int) -> List[str]:  # noqa: UP006
        return [self.message] * repeat

    def unexposed_method(self) -> str:
        return self.message


if __name__ == "__main__":
    main(messaging_config=dict(topic="hello-world-class-topic"))
