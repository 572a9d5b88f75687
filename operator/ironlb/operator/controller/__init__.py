"""The operator's controller: one handler per concern (``handle_*.py``) around one shared state."""

from .controller import Controller

__all__ = ["Controller"]
