"""Audio for rtedge: codecs and resampling (``rtedge.audio.codec``).

Owns: nothing but the package.  Must not: import numpy at import time.
"""
