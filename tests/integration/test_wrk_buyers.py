"""The bench's wrk buyers, for real: every request wrk sends is a buyer of its own, on both of its threads."""
import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flashsale.bench.wrk import wrk

pytestmark = [pytest.mark.broker_free,
              pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")]


class Recorder(BaseHTTPRequestHandler):
    """Answers 202 to every POST and keeps the userId it carried."""
    protocol_version = "HTTP/1.1"  # keep-alive, as the gateway: wrk reuses its connections
    user_ids: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.user_ids.append(body["userId"])
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    Recorder.user_ids = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", Recorder.user_ids
    finally:
        server.shutdown()
        server.server_close()


def test_every_order_wrk_sends_comes_from_a_buyer_of_its_own_across_threads_and_runs(recorder):
    url, user_ids = recorder
    first = wrk(url, "/api/orders", "phone", connections=8, seconds=1)
    second = wrk(url, "/api/orders", "phone", connections=8, seconds=1)
    assert first.requests + second.requests > 100 and first.errors == second.errors == 0
    # wrk counts the answers it read; a request in flight when the run ended may be on the server's list only
    assert len(user_ids) >= first.requests + second.requests
    repeated = sorted(user for user, times in Counter(user_ids).items() if times > 1)
    assert not repeated, f"{len(repeated)} userIds sent more than once, e.g. {repeated[:3]}"
    assert len({user.rsplit("-", 2)[0] for user in user_ids}) == 2  # each run's own prefix
    assert len({user.rsplit("-", 1)[0] for user in user_ids}) == 4  # two threads in each run
