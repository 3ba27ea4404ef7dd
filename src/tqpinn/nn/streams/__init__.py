"""Stream bundles: what forward-only estimators carry through a network instead of a tensor.

:class:`StreamBundle` is the protocol (a value stream plus derivative streams, with its rules for
linear maps and activations); :class:`DifferenceStreams` carries the perturbation differences of
Stein and the stencil, :class:`TaylorStreams` exact forward-mode derivatives; every layer,
activation and the MLP is a :class:`StreamModule` and takes a tensor or a bundle when called.
"""

from tqpinn.nn.streams.bundle import Product, StreamBundle, require_finite
from tqpinn.nn.streams.difference import DifferenceStreams
from tqpinn.nn.streams.module import StreamModule
from tqpinn.nn.streams.taylor import TaylorStreams

__all__ = [
    "DifferenceStreams",
    "Product",
    "StreamBundle",
    "StreamModule",
    "TaylorStreams",
    "require_finite",
]
