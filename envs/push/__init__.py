"""``foresight/Push-v0``, foresight's own tabletop, as a folder of its own.

The scene (:mod:`.sim`), the gymnasium env (:mod:`.env`), its tasks (:mod:`.tasks`) and its
collection policy (:mod:`.policy`). Importing this package loads nothing; ``foresight.envs``
exposes the public names lazily.
"""
