"""The ``rtedge`` command-line application: commands, settings files, systemd service, doctor, logs, exit
codes, usage log.

Application code on top of the library (:mod:`rtedge.voice`, :mod:`rtedge.transport`, :mod:`rtedge.audio`,
:mod:`rtedge.protocol`); nothing in the library imports it.

Owns: nothing but the package.  Must not: be imported by the library (``rtedge.protocol``, ``audio``,
``transport``, ``voice``, ``testing``).
"""
