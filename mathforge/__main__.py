"""`python -m mathforge`: the command line."""
from mathforge.cli import main

main()
