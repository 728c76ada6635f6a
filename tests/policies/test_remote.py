"""The served policy (``policies.remote``) on loopback, in-process: the wire format refuses what is not plain data,
the client gives the local policy's chunks, a wrong token is refused, malformed and oversized messages do not end the
server, a late reply is dropped, and network time counts as inference latency in the runtime."""

import ast
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from policies.base import ActionChunk, fake_observation
from policies.runtime import AsyncRunner
from tests.conftest import require

require("websockets", "remote")
require("msgpack", "remote")

from policies.remote import RemotePolicy, RemotePolicyError, RemotePolicyTimeoutError  # noqa: E402
from policies.remote.protocol import ProtocolError, pack, unpack  # noqa: E402
from policies.remote.server import PolicyServer  # noqa: E402
from robot.policy_loader import describe, load_policy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class Echo:
    """Chunk row k = the observed state + k (so a reply tells which observation it answers); ``gate``: infer waits for
    it (a server that is slow for as long as the test says)."""

    cameras = ("front",)
    image_size = (8, 8)

    def __init__(self, *, delay_s: float = 0.0):
        self.gate = threading.Event()
        self.gate.set()
        self.delay_s = delay_s
        self.tasks: list[str] = []

    def reset(self, task: str) -> None:
        self.tasks.append(task)

    def infer(self, observation: dict) -> ActionChunk:
        self.gate.wait(30)
        if self.delay_s:
            time.sleep(self.delay_s)  # the slow model being emulated, not a wait for a condition
        state = np.asarray(observation["observation.state"], np.float32)
        return ActionChunk(actions=state[None, :] + np.arange(10, dtype=np.float32)[:, None])


def _serve(policy, **kwargs) -> tuple[PolicyServer, str]:
    server = PolicyServer(describe(policy, "custom"), port=0, **kwargs)
    port = server.start_thread()
    return server, f"ws://127.0.0.1:{port}"


@pytest.fixture
def echo_server():
    policy = Echo()
    server, url = _serve(policy, token="s3cret", max_size=64 * 1024)
    yield policy, server, url
    policy.gate.set()
    server.stop()


def _obs(value: float, size: int = 8) -> dict:
    return fake_observation(state=np.full(6, value, np.float32), cameras=("front",), image_size=(size, size))


# ------------------------------------------------------------------------------------------------------ wire format
def test_arrays_travel_as_dtype_shape_bytes_exactly():
    arrays = {
        "f32": np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
        "u8": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
        "i64": np.array([-(2**40), 7], np.int64),
        "b": np.array([True, False]),
        "f64be": np.array([1.5, -2.25], ">f8"),
        "empty": np.zeros((0, 6), np.float32),
    }
    back = unpack(pack({"a": arrays, "task": "pick", "t": 1.25, "n": None}))
    assert back["task"] == "pick" and back["t"] == 1.25 and back["n"] is None
    for name, arr in arrays.items():
        assert back["a"][name].dtype == arr.dtype and back["a"][name].shape == arr.shape, name
        np.testing.assert_array_equal(back["a"][name], arr)
        assert back["a"][name].flags.writeable  # a copy, not a view of the message buffer


@pytest.mark.parametrize(
    "bad",
    [
        {"__ndarray__": True, "dtype": "|O", "shape": [1], "data": b"\0" * 8},
        {"__ndarray__": True, "dtype": "O", "shape": [1], "data": b"\0" * 8},
        {"__ndarray__": True, "dtype": "[('a', 'O')]", "shape": [1], "data": b"\0" * 8},
        {"__ndarray__": True, "dtype": "<U4", "shape": [1], "data": b"\0" * 16},
        {"__ndarray__": True, "dtype": "|V8", "shape": [1], "data": b"\0" * 8},
        {"__ndarray__": True, "dtype": "<f4", "shape": [3], "data": b"\0" * 8},  # 3 floats need 12 bytes
        {"__ndarray__": True, "dtype": "<f4", "shape": [-1], "data": b""},
        {"__ndarray__": True, "dtype": "<f4", "shape": "2", "data": b"\0" * 8},
    ],
)
def test_refused_arrays_raise_protocol_errors(bad):
    import msgpack

    with pytest.raises(ProtocolError):
        unpack(msgpack.packb({"x": bad}, use_bin_type=True))


def test_object_arrays_and_objects_are_never_sent():
    with pytest.raises(ProtocolError, match="dtype object"):
        pack({"x": np.array([1, "a"], dtype=object)})
    with pytest.raises(ProtocolError):
        pack({"x": object()})
    with pytest.raises(ProtocolError):
        unpack(b"\xc1")  # never used in msgpack
    with pytest.raises(ProtocolError):
        unpack("text frame")
    import msgpack

    with pytest.raises(ProtocolError, match="extension"):
        unpack(msgpack.packb(msgpack.ExtType(5, b"payload")))


def test_no_module_of_ours_imports_pickle():
    """No pickle on any wire or in any file: no module of the package imports pickle, cPickle, dill or cloudpickle."""
    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle"}
    found = []
    for package in ("onboard", "robot", "policies", "sim", "hardware"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in banned]
    assert found == []


# ------------------------------------------------------------------------------------------------------ the server
def test_parity_with_the_local_onnx_policy():
    """Same observation -> the same chunk, bit for bit, from the bundled ONNX model served and loaded locally."""
    require("onnxruntime", "onnx")
    from policies.bundle import BUNDLED

    local = load_policy(str(BUNDLED))
    served = load_policy(str(BUNDLED))
    server = PolicyServer(served, port=0)
    port = server.start_thread()
    try:
        remote = load_policy(f"ws://127.0.0.1:{port}")
        assert remote.kind == "remote" and isinstance(remote.policy, RemotePolicy)
        assert remote.cameras == local.cameras == ("front", "wrist")
        assert remote.image_size == local.image_size and remote.exact_size is True
        assert remote.policy.metadata["kind"] == "onnx" and remote.policy.chunk_size == 20
        for task in ("pick up the red cube", "touch the blue cube"):
            local.policy.reset(task)
            remote.policy.reset(task)
            for seed in range(3):
                obs = fake_observation(task=task, image_size=local.image_size, seed=seed, state=np.arange(6) * seed)
                want, got = local.policy.infer(obs), remote.policy.infer(obs)
                assert got.actions.dtype == np.float32
                np.testing.assert_array_equal(got.actions, want.actions)
                assert got.metadata["server_s"] > 0 and got.metadata["round_trip_s"] >= got.metadata["server_s"]
        remote.policy.close()
    finally:
        server.stop()


def test_wrong_token_is_refused_and_the_right_one_served(echo_server):
    policy, _server, url = echo_server
    for token in (None, "wrong", "s3cre", "s3cret "):
        with pytest.raises(RemotePolicyError, match="wrong or missing token"):
            RemotePolicy(url, token=token).connect()
    with RemotePolicy(url, token="s3cret") as client:
        client.reset("go")
        np.testing.assert_array_equal(client.infer(_obs(2.0)).actions[:, 0], 2.0 + np.arange(10))
    assert policy.tasks == ["go"]  # the refused clients never reached the policy


def test_healthz(echo_server):
    _, _, url = echo_server
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=10) as reply:
        assert reply.status == 200 and reply.read() == b"ok\n"


def test_malformed_and_oversized_messages_leave_the_server_serving(echo_server):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    _, _, url = echo_server
    with connect(url) as ws:
        ws.send(pack({"hello": {"version": 1, "token": "s3cret"}}))
        assert "hello" in unpack(ws.recv(10))
        for garbage in (b"\xc1\xc1", "a text frame", pack([1, 2]), pack({"id": 1, "launch": "missiles"})):
            ws.send(garbage)
            assert "error" in unpack(ws.recv(10))
        ws.send(pack({"id": 2, "infer": {"x": {"__ndarray__": True, "dtype": "|O", "shape": [1], "data": b"\0" * 8}}}))
        reply = unpack(ws.recv(10))
        assert reply["id"] is None and "refused" in reply["error"]
        ws.send(pack({"id": 3, "infer": {"no": "state"}}))  # the policy itself raises on it
        assert unpack(ws.recv(10))["id"] == 3
        ws.send(pack({"id": 4, "infer": _obs(1.0)}))  # the same connection still works
        assert unpack(ws.recv(10))["chunk"][0, 0] == 1.0
    with connect(url) as ws:  # over max_size (64 KiB): this connection is closed (1009), the server goes on
        ws.send(pack({"hello": {"version": 1, "token": "s3cret"}}))
        unpack(ws.recv(10))
        ws.send(pack({"id": 1, "infer": _obs(0.0, size=200)}))  # 200x200x3 bytes
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    with RemotePolicy(url, token="s3cret") as client:  # and the next good client is answered
        client.reset("again")
        assert client.infer(_obs(5.0)).actions[0, 0] == 5.0


def test_another_protocol_version_is_refused(echo_server):
    from websockets.sync.client import connect

    _, _, url = echo_server
    with connect(url) as ws:
        ws.send(pack({"hello": {"version": 99, "token": "s3cret"}}))
        assert "protocol version 99" in unpack(ws.recv(10))["error"]


def test_a_reply_that_comes_too_late_is_a_timeout_and_then_dropped(echo_server):
    policy, _, url = echo_server
    with RemotePolicy(url, token="s3cret", timeout_s=0.3) as client:
        client.reset("go")
        policy.gate.clear()
        with pytest.raises(RemotePolicyTimeoutError, match=r"did not answer within 0\.3 s"):
            client.infer(_obs(1.0))
        policy.gate.set()
        client.timeout_s = 30
        # the late answer to the first request arrives first; the client drops it and returns its own
        assert client.infer(_obs(7.0)).actions[0, 0] == 7.0


def test_network_time_counts_as_inference_latency_and_is_compensated():
    """Emulated mode with latency=None takes the wall time of ``infer``, which for a served policy is the round trip:
    a server that takes >= 0.1 s per chunk makes every chunk's first >= 3 actions (at 30 Hz) stale and skipped."""

    class SimClock:
        t = 0.0

        def now(self):
            return self.t

        def sleep_until(self, t):
            self.t = max(self.t, t)

    server, url = _serve(Echo(delay_s=0.1))
    try:
        with RemotePolicy(url) as client:
            clock = SimClock()
            runner = AsyncRunner(client, clock, 30.0, latency=None, mode="emulated")
            runner.reset("go")
            for n in range(40):
                clock.t = n / 30
                runner.action_for(clock.t, _obs(0.0))
            s = runner.stats
            assert s.chunks >= 2 and s.failures == 0
            assert min(s.latency_s) >= 0.1 and min(s.infer_wall_s) >= 0.1
            assert s.skipped_actions >= 3 * s.chunks
            assert s.warmup_ticks >= 3  # held until the first chunk arrived
    finally:
        server.stop()


def test_binding_beyond_loopback_needs_a_token():
    with pytest.raises(ValueError, match="give it a shared --token"):
        PolicyServer(describe(Echo(), "custom"), host="0.0.0.0", port=0)
