"""tqpinn: tensor-compressed, fully quantized physics-informed neural networks."""

__version__ = "0.1.0"
