"""``python -m tqpinn`` (and ``torchrun -m tqpinn``) runs the CLI."""

from tqpinn.cli import main

main()
