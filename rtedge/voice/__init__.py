"""Voice sessions built on the client: ``VoiceAgent`` (microphone and speaker, barge-in), the tick adapter
(``TickSession``, for simulations and telephony), tools (function calling), ``Transcriber`` and the wake word.

Owns the conversation-level behaviour on top of :mod:`rtedge.transport`.  Must not import
:mod:`rtedge.app` (the command line and its settings): a test checks ``sys.modules``.

Owns: nothing but the package.  Must not: import :mod:`rtedge.app`.
"""
