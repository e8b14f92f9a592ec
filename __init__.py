"""flexgame: an agent-based game-theory simulator of TSO-DSO flexibility markets."""

from importlib import metadata

__version__ = metadata.version("flexgame")
