"""`python -m morgus ...`: the same CLI as the `morgus` console script."""

from morgus.app.cli import main

main()
