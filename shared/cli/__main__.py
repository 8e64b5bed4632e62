"""`python -m shared.cli`: the same as the installed `syncguard` command."""

from shared.cli import main

main()
