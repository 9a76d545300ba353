"""The Wyoming dialect (Home Assistant's TCP protocol): see ``server.py``."""

from orate.wyoming.server import WyomingService

__all__ = ["WyomingService"]
