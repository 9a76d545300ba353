"""The HTTP dialects: one package per dialect, over the pieces they share.

- ``openai/``, ``hume/``, ``elevenlabs/``, ``nanogpt/``, ``inferenceclub/``: one wire
  dialect each, translating its bodies into ``SpeechRequest``s and events back into its
  frames; ``orate/``: orate's own routes (history, voices, files, keys, lexicons, the
  playground). Each package's ``__init__.py`` describes it in one ``Dialect``, and
  ``create_app`` lists them; no dialect imports another.
- ``guard.py`` (keys, limits, request metrics) and ``metrics.py``.
- ``http/``: what every dialect may use (errors and envelopes, dependencies, streaming
  helpers, owners, the ``Dialect`` description, the shared request pieces, and the ASGI
  middlewares).
"""
