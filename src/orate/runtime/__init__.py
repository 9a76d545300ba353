"""Where engines run: the local process pool, or Ray actors on a cluster."""
