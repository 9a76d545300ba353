"""The catalog: model ids, the engine behind each, and vendors' names for voices.

Dialects name models and voices in their own vocabulary (OpenAI's ``tts-1`` and
``alloy``, ElevenLabs' ``Rachel`` and ``21m00Tcm4TlvDq8ikWAM``, Hume's ``Ava Song``);
the catalog turns those names into an engine and concrete ``VoiceParams``, so nothing
below it knows any dialect. It is a layer of its own, above ``engines`` and below the
speech service: engines never import it (an import-linter contract says so), and the
dialects and the speech service read it.

- ``models.py``: ``Catalog`` (models served, name → voice resolution), ``Model``,
  the vendors' model ids (``ALIASES``)
- ``openai.py``, ``elevenlabs.py``, ``hume.py``, ``kokoro.py``: each vendor's voice
  (and model) names, on espeak-ng and on the natural palette
- ``natural.py``: the natural palette's engine and its voices
"""
