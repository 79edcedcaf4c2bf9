"""`python -m mailer.cli` (the launcher of `make run` uses it before the console script exists)."""

from mailer.cli import main

main()
