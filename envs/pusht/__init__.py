"""``foresight/PushT-v0``: gym-pusht's T-pushing task through foresight's env contract.

The env and its exploration policy (:mod:`.env`) and its tasks, DINO-WM's protocol among them
(:mod:`.tasks`). Importing this package loads nothing; gym-pusht loads with the env.
"""
