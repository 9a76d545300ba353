"""Hume's Voice Library names, on the natural palette."""

from __future__ import annotations

from orate.catalog.natural import palette_voice
from orate.engines.base import VoiceParams

# Hume's Voice Library names that its own documentation uses, on palette voices of the
# matching description (gender, depth, manner)
HUME_NATURAL: dict[str, VoiceParams] = {
    "ava song": palette_voice("heart", pitch_range=60),
    "kora": palette_voice("wren"),
    "ito": palette_voice("heron", rate=0.97),
    "dacher": palette_voice("crow", rate=0.95),
    "male english actor": palette_voice("rook"),
    "colton rivers": palette_voice("hawk"),
    "vince douglas": palette_voice("raven"),
    "terrence bentley": palette_voice("owl"),
    "imani carter": palette_voice("finch"),
    "sitcom girl": palette_voice("wren", f0=1.06),
    "literature professor": palette_voice("owl", f0=1.08),
    "booming american narrator": palette_voice("raven", volume=125),
    "donovan sinclair": palette_voice("crow", f0=0.94),
    "serene assistant": palette_voice("linnet"),
    "campfire narrator": palette_voice("owl", f0=0.95, breath=0.1),
    "nature documentary narrator": palette_voice("joe"),
    "spanish instructor": palette_voice("lark"),
    "whimsical illustrator": palette_voice("finch", f0=1.05),
}
