"""The gateway's WebSocket handler: a sender that fails ends the handler, and its error is never lost."""
import asyncio
import gc
from types import SimpleNamespace

from fastapi import WebSocketDisconnect

from flashsale.services import gateway
from flashsale.services.fanout import Fanout


class SilentBrowser:
    """A socket whose browser never sends nor closes, and to which every send fails with `error`."""

    def __init__(self, error: Exception):
        self.error, self.sends = error, 0

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict:
        await asyncio.Event().wait()  # nothing, ever
        return {}

    receive_text = receive

    async def send_text(self, text: str) -> None:
        self.sends += 1
        raise self.error


def serve_one(error: Exception) -> tuple[BaseException | None, Fanout, list[str]]:
    """Run the handler for one browser, hand it an update to send, and see how it ends (within 2 s)."""
    complaints: list[str] = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, c: complaints.append(c["message"]))
        fanout = Fanout("unused:9092", partitions=1)
        parts = SimpleNamespace(fanout=fanout)  # the gateway's parts, as `Depends` hands them to the handler
        handler = asyncio.ensure_future(gateway.websocket(SilentBrowser(error), parts, userId="u1"))
        await asyncio.sleep(0.01)
        for subscriber in fanout.everyone():
            subscriber.put('{"type": "order_update", "data": {}}')
        try:
            await asyncio.wait_for(handler, 2)
            ended = None
        except TimeoutError:
            raise AssertionError("the handler listened on to a socket it can no longer send to") from None
        except BaseException as raised:
            ended = raised
        gc.collect()
        return ended, fanout

    ended, fanout = asyncio.run(main())
    return ended, fanout, complaints


def test_a_browser_that_went_away_ends_the_handler_quietly():
    ended, fanout, complaints = serve_one(WebSocketDisconnect(1006))
    assert ended is None
    assert list(fanout.everyone()) == []  # unsubscribed
    assert not [c for c in complaints if "never retrieved" in c], complaints


def test_an_unexpected_send_error_reaches_the_server_instead_of_vanishing():
    ended, fanout, complaints = serve_one(RuntimeError("a bug in the sender"))
    assert isinstance(ended, ExceptionGroup) and ended.subgroup(RuntimeError) is not None, repr(ended)
    assert list(fanout.everyone()) == []
    assert not [c for c in complaints if "never retrieved" in c], complaints
