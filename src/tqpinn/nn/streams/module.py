"""Base class of modules that take a plain tensor or a stream bundle through ``__call__``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from tqpinn.nn.streams.bundle import StreamBundle


class StreamModule(nn.Module, ABC):
    """A module whose ``forward`` takes a tensor or a :class:`StreamBundle`.

    ``forward`` is the one place that tells the two apart. Call the module itself, never
    :meth:`forward_tensor` or :meth:`forward_bundle`: then module hooks (packed activation
    storage, saved-bytes accounting, tracing) see bundles exactly as they see tensors.
    Keyword options are for bundles only (the MLP's ``stream_layers``).
    """

    def forward(
        self, x: torch.Tensor | StreamBundle, **options: Any
    ) -> torch.Tensor | StreamBundle:
        if isinstance(x, StreamBundle):
            return self.forward_bundle(x, **options)
        if options:
            raise TypeError(
                f"{type(self).__name__} takes {sorted(options)} with a stream bundle only, "
                f"got a {type(x).__name__}"
            )
        return self.forward_tensor(x)

    @abstractmethod
    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """The module's map on a plain tensor."""

    @abstractmethod
    def forward_bundle(self, bundle: StreamBundle, **options: Any) -> StreamBundle:
        """The module's map on every stream of ``bundle``."""
