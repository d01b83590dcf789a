"""One benchmark caller process: runs calls against a dasf_geo backend.

Usage: python _caller.py URL TOPIC MODE N START_AT
  MODE small: N sequential ``echo`` calls; prints the latency of each.
  MODE text:  one ``echo_text`` round trip of N characters; prints seconds.
Waits until the wall clock reaches START_AT so that several callers start
together, then prints one JSON line.
"""

from __future__ import annotations

import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from dasf_geo.transport.client import Client
from dasf_geo.transport.dynamic import messaging_config


def main() -> None:
    url, topic, mode, n, start_at = sys.argv[1:6]
    config = messaging_config(topic, url)
    with Client(config, timeout=600) as client:
        client.call({"func_name": "echo", "value": 0})  # warm up connections
        time.sleep(max(0.0, float(start_at) - time.time()))
        if mode == "small":
            latencies = []
            begin = time.time()
            for i in range(int(n)):
                t0 = time.perf_counter()
                assert client.call({"func_name": "echo", "value": i}) == i
                latencies.append(time.perf_counter() - t0)
            end = time.time()
            print(json.dumps({"begin": begin, "end": end, "latencies": latencies}))
        else:
            text = "y" * int(n)
            t0 = time.perf_counter()
            result = client.call({"func_name": "echo_text", "data": text})
            seconds = time.perf_counter() - t0
            assert result == text, "the payload came back altered"
            print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
