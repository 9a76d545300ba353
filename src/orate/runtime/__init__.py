"""The runtime floor: where engines run, below the speech service and above the engines:
the local process pool (pool.py, worker.py) or Ray actors on a cluster (ray_backend.py),
both running the same render step (render.py)."""
