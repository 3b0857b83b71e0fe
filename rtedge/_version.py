"""Owns: the version string.  Must not: import anything.
"""

__version__ = "0.1.0"
