"""The node's run states, shared by the main loop and its mixins.

RUNNING -> STOPPING (warm: TERM, INT) -> stopped; RUNNING/STOPPING -> COLD (QUIT, second
INT) -> stopped. The loop ends when stopping and no child is left.
"""

RUNNING, STOPPING, COLD = "running", "stopping", "cold"
