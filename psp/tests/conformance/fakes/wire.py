"""Small pieces the HTTP fakes share: JSON answers, the lost-answer delay, the call script."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from decimal import Decimal
from typing import Any

from werkzeug import Request, Response

from psp.tests.conformance.kit import Refusal, Send

# The node's client gives up after CLIENT_TIMEOUT seconds (the fakes' node_settings); a lost answer comes
# LATE seconds after the request arrived, well after the client gave up, even on a busy machine.
CLIENT_TIMEOUT = Decimal("1")
LATE = 1.75


def json_answer(payload: object, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, default=str), status=status, headers=headers, content_type="application/json"
    )


def json_body(request: Request) -> Any:
    return json.loads(request.get_data() or b"{}", parse_float=Decimal)


def answer_late() -> None:
    """Hold the answer until the node's client has given up (the server is threaded: other requests,
    such as the look-up that follows, are served meanwhile)."""
    time.sleep(LATE)


class Script:
    """What the next create calls get, in order; a call with nothing scripted gets ``Send.PENDING``. Reads
    by reference that must show nothing (``lag``). Thread-safe: the fake's handlers run in server threads."""

    def __init__(self) -> None:
        self._sends: deque[tuple[Send | Refusal, str]] = deque()
        self._lag = 0
        self._lock = threading.Lock()

    def add(self, behaviour: Send | Refusal, duplicate_form: str) -> None:
        with self._lock:
            self._sends.append((behaviour, duplicate_form))

    def next_send(self) -> tuple[Send | Refusal, str]:
        with self._lock:
            return self._sends.popleft() if self._sends else (Send.PENDING, "")

    def lag(self, count: int) -> None:
        with self._lock:
            self._lag = count

    def read_lags(self) -> bool:
        """Whether this read must show nothing (and count it)."""
        with self._lock:
            if self._lag <= 0:
                return False
            self._lag -= 1
            return True
