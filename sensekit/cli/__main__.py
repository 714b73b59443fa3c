"""`python -m sensekit.cli ...` (and `torchrun` / `accelerate launch -m sensekit.cli ...`)."""

from . import main

main()
