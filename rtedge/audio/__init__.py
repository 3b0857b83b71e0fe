"""Audio for rtedge: codecs and resampling (``rtedge.audio.codec``)."""
