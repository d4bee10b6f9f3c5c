"""The synthetic emotion world: what each channel shows, its accuracy ceiling, its texts."""

import numpy as np
import pytest

from erv.testing.emotion_world import (
    AUDIO_GROUPS,
    COLOURS,
    CUE_WORDS,
    EMOTIONS,
    PITCHES,
    VISUAL_GROUPS,
    WorldConfig,
    best_accuracy,
    clip_frames,
    clip_waveform,
    draw_clips,
    explanation,
    verifier_texts,
)


def test_each_channel_names_only_part_of_an_emotion():
    pairs = {(VISUAL_GROUPS[e], AUDIO_GROUPS[e]) for e in EMOTIONS}
    assert len(pairs) == len(EMOTIONS)  # both channels together name the emotion ...
    assert len(set(VISUAL_GROUPS.values())) < len(EMOTIONS) and len(set(AUDIO_GROUPS.values())) < len(EMOTIONS)
    clean = WorldConfig(visual_reliability=1.0, audio_reliability=1.0)
    assert best_accuracy(clean) == pytest.approx(1.0)
    assert best_accuracy(clean, audio=False) == pytest.approx(4 / 7)  # ... one alone does not
    assert best_accuracy(clean, visual=False) == pytest.approx(3 / 7)
    noisy = best_accuracy(WorldConfig())
    assert 0.7 < noisy < 0.8 and best_accuracy(WorldConfig(), audio=False) < noisy


def test_clips_are_seeded_balanced_and_the_bystander_is_never_the_gold():
    clips = draw_clips(700, seed=3)
    assert clips == draw_clips(700, seed=3) and clips != draw_clips(700, seed=4)
    golds = [c.gold for c in clips]
    assert {golds.count(e) for e in EMOTIONS} == {100}
    assert all(c.bystander != c.gold for c in clips)
    assert 0.75 < np.mean([c.visible == c.gold for c in clips]) < 0.85
    assert 0.33 < np.mean([c.bystander is not None for c in clips]) < 0.47


def test_pictures_and_sound_carry_the_visible_and_audible_cues():
    config = WorldConfig()
    for clip in draw_clips(14, seed=0):
        frame = next(clip_frames(clip, config)).astype(float)
        main = frame[:, : config.size * 3 // 4].reshape(-1, 3).mean(axis=0)
        assert np.abs(main - COLOURS[VISUAL_GROUPS[clip.visible]]).max() < 60
        wave = clip_waveform(clip, config)[0]
        spectrum = np.abs(np.fft.rfft(wave))
        peak = np.fft.rfftfreq(wave.size, 1 / config.audio_rate)[spectrum.argmax()]
        assert abs(peak / PITCHES[AUDIO_GROUPS[clip.audible]] - 1) < 0.08


def test_explanations_mention_the_bystander_and_otherwise_only_the_gold():
    for clip in draw_clips(60, seed=1):
        text = explanation(clip).lower()
        words = {w.strip(".") for w in text.split()}
        assert words & set(CUE_WORDS[clip.gold])
        if clip.bystander is not None:
            assert words & set(CUE_WORDS[clip.bystander])  # the deliberately incoherent sentence
        else:
            others = {w for e in EMOTIONS if e != clip.gold for w in CUE_WORDS[e]}
            assert not words & others


def test_verifier_texts_label_cue_sentences_and_scenes():
    texts = verifier_texts(140, seed=0)
    assert {label for _, labels in texts for label in labels} == set(EMOTIONS)
    for text, labels in texts:
        words = {w.strip(".").lower() for w in text.split()}
        for label in labels:
            if label != "neutral":
                assert words & set(CUE_WORDS[label])
    held_out = {t for t, _ in verifier_texts(40, seed=0, held_out=True)}
    assert not held_out & {t for t, _ in texts}
