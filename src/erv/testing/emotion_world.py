"""A synthetic emotion world for HumanOmni: clips whose emotion is partly visible and partly audible.

Why: the demo must run the whole method (SFT, verifier, GRPO, inference, judge, metrics) on
this machine with nothing downloaded, and the effect the paper measures has to be able to show
up — or not — on its own. The world is built so that a tiny model with frozen random towers
can learn it, and so that neither recognition nor coherence is solved by construction:

* **Emotion cues.** Each clip has a gold emotion g (a DFEW label). The picture's main area has
  the colour of a "visible" emotion (with a moving bar whose speed goes with it), the
  soundtrack a tone with the pitch and tempo of an "audible" emotion; a colour names only the
  valence side of an emotion and a pitch only its arousal, so neither channel alone names it.
  Each channel shows g's cue with its `reliability`, otherwise another emotion's (a
  distractor), independently. So the best possible accuracy is well below 100%
  (:func:`best_accuracy`: 74.5% at the defaults, 47% from the picture alone), and a model
  needs both channels to get near it.
* **A bystander.** In a share of the clips (`bystander_share`) a strip at the right edge has the
  colour of yet another emotion d != g: someone else in the scene.
* **Explanations.** SFT targets are written by an "annotator" who knows g, from emotional and
  neutral sentence templates: a sentence about the face and one about the voice or the scene
  express g (or describe the scene neutrally); whenever the bystander is visible, the first
  sentence describes the bystander's emotion d instead — an explanation that is then
  incoherent with its own answer, as in the paper's Figure 1 (about 40% of the records at the
  defaults).
* **Verifier text.** Sentences from the same vocabulary labelled with the emotion their cue
  word carries, scene sentences labelled neutral.

Everything is a function of `(config, seed)`: the same seed writes the same clips (encoded
losslessly, so decoding gives the same pixels every time) and texts.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erv.data.emotions import DFEW
from erv.data.prompts import TASK_PROMPT
from erv.testing.synthetic_media import encode_mp4

EMOTIONS: tuple[str, ...] = DFEW.labels

# Each channel shows only part of an emotion, as faces and voices do: the colour of the main area
# tells the valence side (yellow: happy or surprise, red: angry or disgust, blue: fear or sad,
# grey: neutral), the pitch of the voice the arousal (high: happy, angry, fear; middle: surprise,
# neutral; low: disgust, sad). Only both together name the emotion. The moving bar's speed goes
# with the colour, the tempo of the voice's pulses with the pitch (redundant, weaker cues).
VISUAL_GROUPS: dict[str, str] = {
    "happy": "yellow",
    "surprise": "yellow",
    "angry": "red",
    "disgust": "red",
    "fear": "blue",
    "sad": "blue",
    "neutral": "grey",
}
AUDIO_GROUPS: dict[str, str] = {
    "happy": "high",
    "angry": "high",
    "fear": "high",
    "surprise": "middle",
    "neutral": "middle",
    "disgust": "low",
    "sad": "low",
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (235, 210, 40),
    "red": (215, 35, 35),
    "blue": (40, 70, 210),
    "grey": (160, 160, 160),
}
SPEEDS: dict[str, int] = {"yellow": 3, "red": 5, "blue": 1, "grey": 0}  # pixels per frame
PITCHES: dict[str, float] = {"high": 1400.0, "middle": 600.0, "low": 250.0}  # Hz
TEMPI: dict[str, float] = {"high": 6.0, "middle": 3.5, "low": 1.5}  # pulses per second
NOBODY = (15, 15, 15)  # the bystander strip when nobody is there

# ---------------------------------------------------------------- text
CUE_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("cheerful", "delighted", "joyful", "radiant"),
    "sad": ("tearful", "gloomy", "downcast", "miserable"),
    "neutral": ("calm", "composed", "steady", "expressionless"),
    "angry": ("furious", "hostile", "irritated", "enraged"),
    "surprise": ("astonished", "startled", "stunned", "amazed"),
    "disgust": ("repulsed", "revolted", "nauseated", "appalled"),
    "fear": ("terrified", "frightened", "scared", "nervous"),
}
SUBJECTS: tuple[str, ...] = ("the man", "the woman", "the girl", "the boy", "the speaker", "the actor")
FACE_TEMPLATES: tuple[str, ...] = ("{s} looks {c}.", "{s} is {c}.", "the face of {s} is {c}.")
VOICE_TEMPLATES: tuple[str, ...] = ("the voice sounds {c}.", "{s} sounds {c}.")
BYSTANDER_TEMPLATES: tuple[str, ...] = ("someone at the side looks {c}.", "a person nearby is {c}.")
SCENE_SENTENCES: tuple[str, ...] = (
    "{s} sits by the window.",
    "{s} stands in the room.",
    "the light is dim.",
    "the camera does not move.",
    "{s} talks on the phone.",
    "the room is quiet.",
)
# Held-out wordings for the verifier's evaluation texts (new templates, known cue words).
HELD_OUT_TEMPLATES: tuple[str, ...] = ("clearly {s} seems {c}.", "in the end {s} stays {c}.")
HELD_OUT_SCENES: tuple[str, ...] = ("{s} walks to the door.", "the picture is dark.")


@dataclass(frozen=True)
class WorldConfig:
    """How the world draws its clips; the defaults are the demo's."""

    visual_reliability: float = 0.8
    """Probability that the colour (and bar speed) shows the gold emotion."""
    audio_reliability: float = 0.8
    """Probability that the pitch (and tempo) shows the gold emotion."""
    bystander_share: float = 0.4
    """Share of clips with a bystander of another emotion (and an incoherent SFT explanation)."""
    voice_sentence_share: float = 0.5
    """Share of SFT explanations whose second sentence describes the voice (else the scene)."""
    size: int = 32
    """Frame width and height in pixels (the tiny SigLIP reads 32 x 32)."""
    fps: int = 8
    seconds: float = 1.0
    audio_rate: int = 16000


@dataclass(frozen=True)
class ClipSpec:
    """One clip of the world: its gold label and what it shows."""

    id: str
    gold: str
    visible: str
    """The emotion the picture shows (the gold one with probability visual_reliability)."""
    audible: str
    bystander: str | None
    """The bystander's emotion (never the gold one), or None when nobody is there."""
    seed: int


def _other(rng: random.Random, emotion: str) -> str:
    return rng.choice([e for e in EMOTIONS if e != emotion])


def draw_clips(n: int, seed: int, config: WorldConfig = WorldConfig(), *, first_id: int = 1) -> list[ClipSpec]:
    """`n` clips with balanced gold labels (a shuffled round-robin), ids `first_id`, `first_id + 1`, ..."""
    rng = random.Random(f"emotion-world-{seed}")
    golds = [EMOTIONS[i % len(EMOTIONS)] for i in range(n)]
    rng.shuffle(golds)
    clips = []
    for i, gold in enumerate(golds):
        visible = gold if rng.random() < config.visual_reliability else _other(rng, gold)
        audible = gold if rng.random() < config.audio_reliability else _other(rng, gold)
        bystander = _other(rng, gold) if rng.random() < config.bystander_share else None
        clips.append(ClipSpec(f"{first_id + i:05d}", gold, visible, audible, bystander, rng.randrange(2**31)))
    return clips


def channel_probability(shown: str, gold: str, reliability: float) -> float:
    """P(a channel shows `shown`'s cue | gold): the gold's cue with `reliability`, else any other's."""
    return reliability if shown == gold else (1.0 - reliability) / (len(EMOTIONS) - 1)


def best_accuracy(config: WorldConfig = WorldConfig(), *, visual: bool = True, audio: bool = True) -> float:
    """The accuracy of the Bayes-optimal classifier that reads the chosen channels perfectly.

    Exact, by enumeration: a classifier sees the colour group and the pitch group, not the
    emotion behind them, and guesses the gold with the highest joint probability; the
    bystander carries no information about g. `visual=False` or `audio=False` gives the best
    accuracy from one channel alone.
    """
    colours = sorted(set(VISUAL_GROUPS.values())) if visual else [None]
    pitches = sorted(set(AUDIO_GROUPS.values())) if audio else [None]

    def p_group(groups: dict[str, str], group: str | None, gold: str, reliability: float) -> float:
        if group is None:
            return 1.0
        return sum(channel_probability(e, gold, reliability) for e in EMOTIONS if groups[e] == group)

    total = 0.0
    for colour in colours:
        for pitch in pitches:
            total += max(
                p_group(VISUAL_GROUPS, colour, g, config.visual_reliability)
                * p_group(AUDIO_GROUPS, pitch, g, config.audio_reliability)
                for g in EMOTIONS
            ) / len(EMOTIONS)
    return total


# ---------------------------------------------------------------- pictures and sound
def clip_frames(spec: ClipSpec, config: WorldConfig = WorldConfig()) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames: the visible emotion's colour with a lighter bar moving at its speed;
    a strip at the right edge in the bystander's colour, black when nobody is there."""
    rng = np.random.default_rng(spec.seed)
    size = config.size
    strip = size // 4
    group = VISUAL_GROUPS[spec.visible]
    colour = np.array(COLOURS[group], dtype=np.float32) + rng.normal(0.0, 12.0, 3)
    side = np.array(NOBODY if spec.bystander is None else COLOURS[VISUAL_GROUPS[spec.bystander]], dtype=np.float32)
    speed = SPEEDS[group]
    start = int(rng.integers(0, size))
    frames = max(1, int(round(config.seconds * config.fps)))
    for i in range(frames):
        img = np.empty((size, size, 3), dtype=np.float32)
        img[:, : size - strip] = colour
        row = (start + speed * i) % (size - 4)
        img[row : row + 4, : size - strip] = 0.6 * colour + 90.0  # the bar: a lighter band of the colour
        img[:, size - strip :] = side
        img += rng.normal(0.0, 8.0, img.shape)
        yield np.clip(img, 0, 255).astype(np.uint8)


def _tone(t: np.ndarray, pitch: float, tempo: float, phase: float) -> np.ndarray:
    envelope = 0.55 + 0.45 * np.sin(2 * math.pi * tempo * t + phase)
    return envelope * (np.sin(2 * math.pi * pitch * t) + 0.4 * np.sin(4 * math.pi * pitch * t))


def clip_waveform(spec: ClipSpec, config: WorldConfig = WorldConfig()) -> np.ndarray:
    """(1, samples) float32: the voice (pitch and tempo of the audible emotion) and noise."""
    rng = np.random.default_rng(spec.seed + 1)
    n = int(round(config.seconds * config.audio_rate))
    t = np.arange(n) / config.audio_rate
    group = AUDIO_GROUPS[spec.audible]
    wave = 0.25 * _tone(t, PITCHES[group] * (1.0 + rng.uniform(-0.05, 0.05)), TEMPI[group], rng.uniform(0, 6.3))
    wave += 0.02 * rng.standard_normal(n)
    return wave[None, :].astype(np.float32)


def write_world_clip(path: str | os.PathLike[str], spec: ClipSpec, config: WorldConfig = WorldConfig()) -> Path:
    """An MP4 (H.264 + AAC) of one clip of the world."""
    # Lossless (qp 0): x264's lossy decisions now and then differ between two encodings of the
    # same frames, and the demo promises the same pixels, hence the same numbers, for a seed.
    return encode_mp4(
        path,
        clip_frames(spec, config),
        size=(config.size, config.size),
        fps=config.fps,
        audio=clip_waveform(spec, config),
        audio_rate=config.audio_rate,
        video_options={"preset": "veryfast", "qp": "0"},
    )


def _sentence(rng: random.Random, templates: Sequence[str], emotion: str | None) -> str:
    text = rng.choice(templates).format(s=rng.choice(SUBJECTS), c=rng.choice(CUE_WORDS[emotion]) if emotion else "")
    return text[0].upper() + text[1:]


def explanation(spec: ClipSpec, seed: int = 0, config: WorldConfig = WorldConfig()) -> str:
    """The annotator's `<think>` text for an SFT record.

    Two sentences: when the bystander is there, what the bystander shows (its emotion d, not
    the gold) and then the face; otherwise the face and then the voice or the scene. The face
    and voice sentences express the gold emotion; a scene sentence none.
    """
    rng = random.Random(f"explanation-{seed}-{spec.id}")
    face = _sentence(rng, FACE_TEMPLATES, spec.gold)
    if spec.bystander is not None:
        return " ".join([_sentence(rng, BYSTANDER_TEMPLATES, spec.bystander), face])
    if rng.random() < config.voice_sentence_share:
        return " ".join([face, _sentence(rng, VOICE_TEMPLATES, spec.gold)])
    return " ".join([face, _sentence(rng, SCENE_SENTENCES, None)])


def verifier_texts(n: int, seed: int, *, held_out: bool = False) -> list[tuple[str, tuple[str, ...]]]:
    """`(text, labels)` for verifier training: cue-word sentences carry their emotion, scenes are neutral.

    A share of the texts joins two sentences of different emotions (two labels), so the verifier
    also learns what a mixed explanation looks like; `held_out` uses templates no training
    text has.
    """
    rng = random.Random(f"verifier-text-{seed}-{held_out}")
    emotional = HELD_OUT_TEMPLATES if held_out else FACE_TEMPLATES + VOICE_TEMPLATES + BYSTANDER_TEMPLATES
    scenes = HELD_OUT_SCENES if held_out else SCENE_SENTENCES
    out: list[tuple[str, tuple[str, ...]]] = []
    for i in range(n):
        emotion = EMOTIONS[i % len(EMOTIONS)]
        if emotion == "neutral" and rng.random() < 0.5:
            out.append((_sentence(rng, scenes, None), ("neutral",)))
            continue
        text = _sentence(rng, emotional, emotion)
        labels: tuple[str, ...] = (emotion,)
        roll = rng.random()
        if roll < 0.2 and emotion != "neutral":
            other = rng.choice([e for e in EMOTIONS if e not in (emotion, "neutral")])
            text += " " + _sentence(rng, emotional, other)
            labels = (emotion, other)
        elif roll < 0.4:
            text += " " + _sentence(rng, scenes, None)  # a scene sentence adds no emotion
        out.append((text, labels))
    return out


def vocabulary_texts() -> list[str]:
    """Texts covering every word the world's prompts, explanations and answers use (tokenizer training)."""
    texts = [TASK_PROMPT, " ".join(EMOTIONS)]
    for emotion, cues in CUE_WORDS.items():
        for cue in cues:
            for templates in (FACE_TEMPLATES, VOICE_TEMPLATES, BYSTANDER_TEMPLATES, HELD_OUT_TEMPLATES):
                for template in templates:
                    for subject in SUBJECTS:
                        text = template.format(s=subject, c=cue)
                        texts.append(text[0].upper() + text[1:])
        texts.append(f"<think>{cues[0]}</think>\n<answer>{emotion}</answer>")
    for scene in SCENE_SENTENCES + HELD_OUT_SCENES:
        for subject in SUBJECTS:
            text = scene.format(s=subject)
            texts.append(text[0].upper() + text[1:])
    return texts
