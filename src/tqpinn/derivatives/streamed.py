"""The check shared by estimators that hand the network a stream bundle."""

from __future__ import annotations

from tqpinn.derivatives.base import Network
from tqpinn.nn.streams import StreamModule


def require_stream_module(net: Network, why: str) -> StreamModule:
    """``net`` if it takes stream bundles, else a TypeError saying ``why`` it must."""
    if not isinstance(net, StreamModule):
        raise TypeError(
            f"{why} needs a network that takes stream bundles (a tqpinn.nn.StreamModule such "
            f"as tqpinn.nn.MLP); got {type(net).__name__}"
        )
    return net
