"""``python -m rubrix``: the same as the ``rubrix`` console script."""

from .cli import main

main()
