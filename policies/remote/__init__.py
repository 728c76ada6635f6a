"""A policy served over the network, safely: `onboard serve-policy` (``server.PolicyServer``) and the client backend
``--policy.url=ws://host:port`` (``client.RemotePolicy``), msgpack over a websocket with numpy arrays as
dtype/shape/raw bytes (``protocol``): no pickle, no object dtypes, a shared token, a version handshake, the server's
inference time in every reply. websockets and msgpack are imported when used (``pip install 'onboard[remote]'``)."""

from policies.remote.client import RemotePolicy, RemotePolicyTimeoutError, is_policy_url
from policies.remote.protocol import VERSION, ProtocolError, RemotePolicyError

__all__ = ["VERSION", "ProtocolError", "RemotePolicy", "RemotePolicyError", "RemotePolicyTimeoutError", "is_policy_url"]
