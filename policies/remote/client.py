"""``RemotePolicy``: the Policy seam (``reset`` / ``infer``) over a websocket to `onboard serve-policy`.

    policy = RemotePolicy("ws://gpu-box:8765", token=os.environ.get("ONBOARD_POLICY_TOKEN")).connect()
    policy.cameras, policy.image_size, policy.metadata     # from the server's handshake
    policy.reset("pick up the red cube"); chunk = policy.infer(observation)

It runs behind the same runtime as a local backend (``policies.runtime``): ``infer`` blocks for the round trip, so
network time is inference latency (measured and compensated by ``AsyncRunner``, which calls ``infer`` off the control
thread and holds the arm while no chunk is usable). A reply that does not come within ``timeout_s`` raises
``RemotePolicyTimeoutError`` (the runner counts a failure and holds; a late reply is recognised by its id and
dropped). A lost server raises ``RemotePolicyError`` on every call until ``reset`` connects again: the runner holds
and, after ``max_policy_failures`` in a row, `onboard run` stops the arm; the next ``reset`` (a new episode in `onboard
eval`) raises it to the command, which ends with one line. ``chunk.metadata`` carries ``server_s`` (seconds in the
policy on the server) and ``round_trip_s``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from policies.base import ActionChunk
from policies.remote.protocol import MAX_MESSAGE_BYTES, VERSION, ProtocolError, RemotePolicyError, pack, unpack

log = logging.getLogger(__name__)


class RemotePolicyTimeoutError(RemotePolicyError, TimeoutError):
    """The server did not answer within the client's timeout (the connection stays open)."""


def is_policy_url(path: Any) -> bool:
    """True for ``ws://`` and ``wss://`` addresses (a served policy, not a folder)."""
    return isinstance(path, str) and path.startswith(("ws://", "wss://"))


class RemotePolicy:
    """A policy served by `onboard serve-policy` at ``url`` (module doc)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 5.0,
        max_size: int = MAX_MESSAGE_BYTES,
    ):
        if not is_policy_url(url):
            raise ValueError(f"--policy.url must be ws://host:port or wss://host:port, got {url!r}")
        self.url = url
        self.token = token
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.max_size = int(max_size)
        self.metadata: dict[str, Any] = {}
        self.cameras: tuple[str, ...] | None = None
        self.image_size: tuple[int, int] | None = None
        self.exact_size: bool | None = None
        self.chunk_size: int | None = None
        self.server_s: list[float] = []
        self._ws: Any = None
        self._next_id = 0
        self._lost_reason: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def connect(self) -> RemotePolicy:
        """Open the connection and shake hands (a ``RemotePolicyError`` saying why not)."""
        from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException
        from websockets.sync.client import connect

        self.close()
        try:
            # entered as a context manager: the one way that works (and warns about nothing) in websockets 12..17+
            ws = connect(
                self.url, open_timeout=self.connect_timeout_s, max_size=self.max_size, compression=None
            ).__enter__()
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, WebSocketException) as exc:
            raise RemotePolicyError(
                f"cannot reach the policy server at {self.url} ({type(exc).__name__}: {exc}); is `onboard "
                "serve-policy` running there?"
            ) from None
        self._ws = ws
        self._lost_reason = None
        try:
            ws.send(pack({"hello": {"version": VERSION, "token": self.token}}))
            reply = self._recv(self.connect_timeout_s)
        except RemotePolicyError:
            self.close()
            raise
        if "error" in reply:
            self.close()
            raise RemotePolicyError(f"the policy server at {self.url} refused the connection: {reply['error']}")
        hello = reply.get("hello")
        if not isinstance(hello, dict) or hello.get("version") != VERSION:
            self.close()
            raise RemotePolicyError(f"the server at {self.url} does not speak policy protocol version {VERSION}")
        meta = hello.get("metadata") or {}
        self.metadata = dict(meta)
        self.cameras = tuple(str(c) for c in meta["cameras"]) if meta.get("cameras") else None
        size = meta.get("image_size")
        self.image_size = (int(size[0]), int(size[1])) if size else None
        self.exact_size = bool(meta.get("exact_size")) if "exact_size" in meta else None
        self.chunk_size = meta.get("chunk_size")
        log.info("connected to %s policy at %s", meta.get("kind"), self.url)
        return self

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # closing a broken connection: nothing left to do
                pass

    def __enter__(self) -> RemotePolicy:
        return self.connect() if self._ws is None else self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the Policy seam ------------------------------------------------------------------------------------------
    def reset(self, task: str) -> None:
        """A new episode on the server (connects again first if the connection was lost)."""
        if self._ws is None:
            self.connect()
        self._request({"reset": task})

    def infer(self, observation: dict) -> ActionChunk:
        t0 = time.perf_counter()
        reply = self._request({"infer": observation})
        round_trip = time.perf_counter() - t0
        actions = reply.get("chunk")
        if not isinstance(actions, np.ndarray):
            raise ProtocolError(f"the server's reply has no action chunk: {sorted(reply)}")
        server_s = float(reply.get("server_s") or 0.0)
        self.server_s.append(server_s)
        meta = dict(reply.get("metadata") or {})
        meta.update(server_s=server_s, round_trip_s=round_trip)
        t_obs = reply.get("t_obs")
        return ActionChunk(actions=actions, t_obs=float(t_obs) if t_obs is not None else None, metadata=meta)

    # -- the wire -------------------------------------------------------------------------------------------------
    def _lost(self, exc: BaseException) -> RemotePolicyError:
        self.close()
        self._lost_reason = (
            f"lost the policy server at {self.url} ({type(exc).__name__}: {exc}): holding; restart `onboard "
            "serve-policy` and run again"
        )
        return RemotePolicyError(self._lost_reason)

    def _recv(self, timeout_s: float, limit_s: float | None = None) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        try:
            raw = self._ws.recv(timeout=timeout_s)
        except TimeoutError:
            raise RemotePolicyTimeoutError(
                f"the policy server at {self.url} did not answer within {limit_s or timeout_s:g} s"
            ) from None
        except (ConnectionClosed, OSError) as exc:
            raise self._lost(exc) from None
        msg = unpack(raw)
        if not isinstance(msg, dict):
            raise ProtocolError("the server sent a message that is not a map")
        return msg

    def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            raise RemotePolicyError(self._lost_reason or f"not connected to the policy server at {self.url}")
        self._next_id += 1
        rid = self._next_id
        try:
            self._ws.send(pack({"id": rid, **body}))
        except (ConnectionClosed, OSError) as exc:
            raise self._lost(exc) from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._recv(max(0.0, deadline - time.monotonic()), self.timeout_s)
            if reply.get("id") == rid or (reply.get("id") is None and "error" in reply):
                break
            log.debug("dropped a late reply (id %s, waiting for %d)", reply.get("id"), rid)
        if "error" in reply:
            raise RemotePolicyError(f"the policy server at {self.url} answered: {reply['error']}")
        return reply
