"""A client that asks a service every 20 ms during a deploy and keeps every failure it saw."""

from __future__ import annotations

import http.client
import threading


class Client(threading.Thread):
    """Asks a port every ``interval`` seconds (a new connection each time) and keeps what fails."""

    def __init__(self, port: int, path: str = "/", *, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.interval = port, path, interval
        self.answers: list[str] = []
        self.failures: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read().decode()
                if response.status == 200:
                    self.answers.append(body)
                else:
                    self.failures.append(f"{response.status} {body[:80]}")
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(f"{type(error).__name__}: {error}")
            finally:
                connection.close()
            self._done.wait(self.interval)

    def finish(self) -> None:
        self._done.set()
        self.join(10)
