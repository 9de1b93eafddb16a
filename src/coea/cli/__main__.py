"""``python -m coea.cli``."""

from coea.cli import main

main()
