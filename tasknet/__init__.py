"""Tasknet's front door: the ``tasknet`` CLI, the embedded devnet and the demo. Holds no protocol logic."""

__version__ = "0.1.0"
