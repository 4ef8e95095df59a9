"""``python -m rubrix.cli``: the same as the ``rubrix`` console script."""

from . import main

main()
