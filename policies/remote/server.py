"""``PolicyServer``: one loaded policy served over a websocket (``policies.remote.protocol``), `onboard serve-policy`.

    server = PolicyServer(loaded, host="127.0.0.1", port=8765, token="s3cret")   # loaded: robot.policy_loader's
    server.run(ready=lambda port: ...)                                            # blocks; stop() from another thread

Each connection starts with the handshake (the token compared in constant time; a wrong or missing token, or another
protocol version, is answered with one ``error`` and the connection closed with code 1008), then takes ``reset`` and
``infer`` requests in order. The policy runs on a worker thread, one call at a time (the event loop never waits on
it); every reply carries ``server_s``, the seconds spent in the policy. A message over ``max_size`` bytes closes that
connection (1009); a malformed one (not msgpack, a refused dtype, an unknown request, an observation the policy
rejects) is answered with an ``error`` reply and the connection stays open. Nothing a client sends ends the server.
``GET /healthz`` answers 200 "ok" (the websocket server's ``process_request``). Several clients may connect
(`onboard eval --num_envs N`): they share the one policy, one call at a time, and the policy is reset to a
client's instruction again when it infers after another client's reset (a policy that keeps more per-episode state
than its instruction loses it then: serve one robot per server).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from policies.base import ActionChunk
from policies.remote.protocol import MAX_MESSAGE_BYTES, VERSION, ProtocolError, observation_metadata, pack, unpack

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
HELLO_TIMEOUT_S = 10.0


def check_bind(host: str, token: str | None) -> None:
    """A host other than loopback exposes the policy to the network: it needs a token."""
    if host not in LOOPBACK and not token:
        raise ValueError(
            f"--host {host} exposes the policy server to the network: give it a shared --token (clients set "
            "ONBOARD_POLICY_TOKEN), or serve on 127.0.0.1"
        )


def _plain(value: Any) -> bool:
    return isinstance(value, bool | int | float | str) or value is None


class PolicyServer:
    """Serves ``loaded`` (a ``robot.policy_loader.LoadedPolicy``-like: ``policy``, ``kind``, ``cameras``,
    ``image_size``, ``exact_size``, ``path``); module doc."""

    def __init__(
        self,
        loaded: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        max_size: int = MAX_MESSAGE_BYTES,
        hello_timeout_s: float = HELLO_TIMEOUT_S,
    ):
        check_bind(host, token)
        self.loaded = loaded
        self.policy = loaded.policy
        self.host, self.port, self.token = host, int(port), token
        self.max_size = int(max_size)
        self.hello_timeout_s = hello_timeout_s
        self.metadata = observation_metadata(loaded)
        self.requests = 0
        self._policy_lock = threading.Lock()
        self._owner: dict[str, Any] | None = None  # the connection whose reset the policy holds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def run(self, ready: Callable[[int], None] | None = None) -> None:
        """Serve until ``stop()`` (blocks). ``ready(port)`` once listening (the bound port: ``port=0`` picks one)."""
        asyncio.run(self.serve(ready))

    async def serve(self, ready: Callable[[int], None] | None = None) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handle,
            self.host,
            self.port,
            max_size=self.max_size,
            process_request=self._process_request,
            compression=None,
        ) as server:
            self.port = int(next(iter(server.sockets)).getsockname()[1])
            log.info("serving %s policy on ws://%s:%d", self.metadata["kind"], self.host, self.port)
            if ready is not None:
                ready(self.port)
            await self._stop.wait()

    def stop(self) -> None:
        """End ``run`` (from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    def start_thread(self, timeout_s: float = 30.0) -> int:
        """Serve on a daemon thread; returns the bound port once listening."""
        bound = threading.Event()
        thread = threading.Thread(target=self.run, kwargs={"ready": lambda _port: bound.set()}, daemon=True)
        thread.start()
        if not bound.wait(timeout_s):
            raise TimeoutError(f"the policy server did not start listening within {timeout_s} s")
        return self.port

    # -- HTTP -----------------------------------------------------------------------------------------------------
    def _process_request(self, connection: Any, request: Any) -> Any:
        if request.path.split("?", 1)[0] == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    # -- a connection ---------------------------------------------------------------------------------------------
    async def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            if not await self._hello(ws):
                return
            episode: dict[str, Any] = {"task": None}  # this connection's instruction (clients share the policy)
            async for raw in ws:
                await ws.send(pack(await self._answer(raw, episode)))
        except ConnectionClosed:
            pass
        except Exception:  # a bug here must end this connection, never the server
            log.exception("policy server: connection from %s failed", getattr(ws, "remote_address", "?"))
            await ws.close(1011, "internal error")

    async def _refuse(self, ws: Any, why: str) -> bool:
        log.warning("policy server: refused %s: %s", getattr(ws, "remote_address", "?"), why)
        await ws.send(pack({"error": why}))
        await ws.close(1008, why[:120])
        return False

    async def _hello(self, ws: Any) -> bool:
        try:
            msg = unpack(await asyncio.wait_for(ws.recv(), self.hello_timeout_s))
        except TimeoutError:
            return await self._refuse(ws, f"no hello within {self.hello_timeout_s:g} s")
        except ProtocolError as exc:
            return await self._refuse(ws, f"bad hello: {exc}")
        hello = msg.get("hello") if isinstance(msg, dict) else None
        if not isinstance(hello, dict):
            return await self._refuse(ws, "the first message must be {'hello': {'version', 'token'}}")
        if hello.get("version") != VERSION:
            return await self._refuse(
                ws, f"protocol version {hello.get('version')!r} is not this server's {VERSION}: update onboard"
            )
        if self.token:
            given = hello.get("token")
            if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self.token.encode()):
                return await self._refuse(
                    ws, "wrong or missing token (set ONBOARD_POLICY_TOKEN to the server's --token)"
                )
        await ws.send(pack({"hello": {"version": VERSION, "metadata": self.metadata}}))
        return True

    async def _answer(self, raw: bytes | str, episode: dict[str, Any]) -> dict[str, Any]:
        try:
            msg = unpack(raw)
        except ProtocolError as exc:
            return {"id": None, "error": str(exc)}
        if not isinstance(msg, dict):
            return {"id": None, "error": "a request is a map: {'id', 'reset' or 'infer'}"}
        rid = msg.get("id")
        out: dict[str, Any] = {"id": rid if isinstance(rid, int) and not isinstance(rid, bool) else None}
        try:
            if "reset" in msg:
                if not isinstance(msg["reset"], str):
                    raise ProtocolError("'reset' takes the instruction, a string")
                out["server_s"] = await asyncio.to_thread(self._reset, msg["reset"], episode)
                out["ok"] = True
            elif "infer" in msg:
                obs = msg["infer"]
                if not isinstance(obs, dict) or not all(isinstance(k, str) for k in obs):
                    raise ProtocolError("'infer' takes the observation, a map of names to values")
                chunk, out["server_s"] = await asyncio.to_thread(self._infer, obs, episode)
                out["chunk"] = chunk.actions
                out["t_obs"] = chunk.t_obs if isinstance(chunk.t_obs, int | float) else None
                out["metadata"] = {str(k): v for k, v in dict(chunk.metadata).items() if _plain(v)}
            else:
                raise ProtocolError("unknown request: send {'id', 'reset': task} or {'id', 'infer': observation}")
        except Exception as exc:  # the policy rejected it, or it was not a valid request: tell the client
            return {"id": out["id"], "error": f"{type(exc).__name__}: {exc}"}
        self.requests += 1
        return out

    def _reset(self, task: str, episode: dict[str, Any]) -> float:
        with self._policy_lock:
            t0 = time.perf_counter()
            self.policy.reset(task)
            episode["task"] = task
            self._owner = episode
            return time.perf_counter() - t0

    def _infer(self, observation: dict, episode: dict[str, Any]) -> tuple[ActionChunk, float]:
        with self._policy_lock:
            t0 = time.perf_counter()
            if self._owner is not episode and episode["task"] is not None:  # another client reset it since
                self.policy.reset(episode["task"])
                self._owner = episode
            chunk = self.policy.infer(observation)
            dt = time.perf_counter() - t0
        if not isinstance(chunk, ActionChunk):
            raise TypeError(f"the policy returned {type(chunk).__name__}, not an ActionChunk")
        return chunk, dt
