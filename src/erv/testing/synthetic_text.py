"""A synthetic emotion-text world: cue-word sentences, a word-level tokenizer, a tiny RoBERTa.

Used by the demo and the tests, where no real corpus or pretrained model can be downloaded.
Sentences combine emotion cue words with subjects, scene phrases and templates; held-out
templates and openings differ from the training ones, so a model must learn the cue words
rather than memorise sentences. Nothing here downloads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch


def word_tokenizer(words: Iterable[str], model_max_length: int = 64):
    """A RoBERTa-style (`<s> … </s>`) word-level fast tokenizer over `words`."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for word in sorted({w.lower() for w in words}):
        vocab.setdefault(word, len(vocab))
    for punct in ".,!?;:'\"()-":
        vocab.setdefault(punct, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )


def tiny_roberta(
    tokenizer,
    labels: Sequence[str],
    *,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
    max_positions: int = 64,
    dropout: float = 0.1,
    init_range: float = 0.02,
):
    """A random-init RobertaForSequenceClassification whose id2label names `labels`."""
    from transformers import RobertaConfig, RobertaForSequenceClassification

    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        max_position_embeddings=max_positions + 2,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={lab: i for i, lab in enumerate(labels)},
        problem_type="multi_label_classification",
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        initializer_range=init_range,
    )
    torch.manual_seed(seed)
    return RobertaForSequenceClassification(config).eval()


def save_tiny_verifier(folder: str | os.PathLike[str], tokenizer, labels: Sequence[str], **options) -> Path:
    """A :func:`tiny_roberta` (`options` as there) and its tokenizer saved as one model folder."""
    tiny_roberta(tokenizer, labels, **options).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


# ---------------------------------------------------------------- a compositional synthetic corpus

# Emotion cue words per DFEW label; sentences combine them with subjects, scene phrases and
# templates, so a held-out sentence is new as a whole while its cues are known words.
CUES = {
    "happy": ["smiling", "grinning", "beaming", "laughing", "cheerful", "delighted"],
    "sad": ["tearful", "weeping", "sobbing", "downcast", "mournful", "gloomy"],
    "angry": ["furious", "shouting", "scowling", "glaring", "enraged", "fuming"],
    "surprise": ["astonished", "gasping", "startled", "amazed", "stunned", "wide-eyed"],
    "disgust": ["grimacing", "repulsed", "revolted", "sneering", "nauseated", "recoiling"],
    "fear": ["trembling", "terrified", "cowering", "panicked", "frightened", "shaking"],
    "neutral": ["expressionless", "composed", "blank", "impassive", "flat", "unmoved"],
}
SUBJECTS = [
    "the man",
    "the woman",
    "the boy",
    "the girl",
    "the old man",
    "the speaker",
    "the actor",
    "the driver",
    "the teacher",
    "the soldier",
    "the nurse",
    "the child",
]
SCENES = [
    "in the kitchen",
    "near the window",
    "at the table",
    "on the phone",
    "in the car",
    "by the door",
    "in the office",
    "on the street",
    "in the rain",
    "at night",
    "in the hallway",
    "during the call",
]
TRAIN_TEMPLATES = [
    "{s} is {c} {p} .",
    "{p} , {s} looks {c} .",
    "{s} appears {c} while talking {p} .",
    "we see {s} {c} {p} .",
    "the voice of {s} sounds {c} {p} .",
    "{s} keeps {c} as the camera moves {p} .",
]
HELD_OUT_TEMPLATES = [
    "clearly {s} seems {c} {p} .",
    "{p} the face of {s} is {c} .",
    "throughout the clip {s} stays {c} .",
]
# Leading phrases shift the cue words' positions, so position alone cannot give a label away.
TRAIN_PREFIXES = ["", "", "in this scene ,", "at first ,", "later on ,", "for a moment ,", "on screen ,"]
HELD_OUT_PREFIXES = ["", "after a pause ,", "in the end ,"]
FILLERS = [
    "the",
    "a",
    "is",
    "looks",
    "appears",
    "while",
    "talking",
    "we",
    "see",
    "voice",
    "of",
    "sounds",
    "as",
    "camera",
    "moves",
    "keeps",
    "clearly",
    "seems",
    "face",
    "throughout",
    "clip",
    "stays",
    "and",
    "also",
]


def synthetic_corpus(n: int, seed: int, *, held_out: bool = False, two_label_share: float = 0.25):
    """`(text, labels)` pairs: one or two cue words decide the labels, everything else is noise."""
    import random

    rng = random.Random(seed)
    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    prefixes = HELD_OUT_PREFIXES if held_out else TRAIN_PREFIXES
    labels = list(CUES)
    emotional = [lab for lab in labels if lab != "neutral"]
    out = []
    for i in range(n):
        first = labels[i % len(labels)]
        chosen = [first]
        if first != "neutral" and rng.random() < two_label_share:
            chosen.append(rng.choice([lab for lab in emotional if lab != first]))
        cue = " and ".join(rng.choice(CUES[lab]) for lab in chosen)
        text = rng.choice(templates).format(s=rng.choice(SUBJECTS), c=cue, p=rng.choice(SCENES))
        text = f"{rng.choice(prefixes)} {text}".strip()
        out.append((text, tuple(chosen)))
    return out


def corpus_words() -> list[str]:
    words = set(FILLERS)
    for cues in CUES.values():
        words.update(cues)
    for phrase in SUBJECTS + SCENES + TRAIN_TEMPLATES + HELD_OUT_TEMPLATES + TRAIN_PREFIXES + HELD_OUT_PREFIXES:
        words.update(w for w in phrase.replace("{s}", "").replace("{c}", "").replace("{p}", "").split())
    return sorted(words)
