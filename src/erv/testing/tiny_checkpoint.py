"""A complete, tiny HumanOmni release built from scratch: checkpoint, towers, tokenizers.

The demo and end-to-end tests need what a user downloads (a checkpoint folder with its LLM
tokenizer and chat template, a SigLIP folder with its image processor, a Whisper folder with
its feature extractor, a BERT folder with its tokenizer) but cannot reach the hub. This
writes the same layout with random weights at toy size (the `humanomni-tiny` preset: LLM
width 64, 4×4 SigLIP patches, a 1-second Whisper window), so every loading and
preprocessing code path runs as it would on a real release.

    root/checkpoint/   config.json, model.safetensors, generation_config.json, tokenizer files
    root/siglip-tiny/  root/whisper-tiny/  root/bert-tiny/
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from erv.data.emotions import TAXONOMIES
from erv.data.prompts import TASK_PROMPT

# ChatML with Qwen2-VL's default system turn, as the released tokenizers render it.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _corpus() -> list[str]:
    words = sorted({label for tax in TAXONOMIES.values() for label in tax.labels})
    return [
        TASK_PROMPT,
        " ".join(words),
        "<think> </think> <answer> </answer> <vi_start> <vi_end> <au_start> <au_end>",
        "You are a helpful assistant.",
        "system user assistant",
    ] * 4


def build_llm_tokenizer(vocab_size: int = 500, texts: Sequence[str] = ()):
    """A byte-level BPE in the Qwen2 layout: ids 0..vocab_size-1, then the ChatML specials.

    `texts` join the training corpus, so that a world's words become single tokens and its
    completions stay short.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_corpus() + list(texts), trainer=trainer)
    # Pad the vocabulary to exactly vocab_size so the specials land on fixed ids.
    missing = vocab_size - tok.get_vocab_size()
    if missing > 0:
        tok.add_tokens([f"<|unused_{i}|>" for i in range(missing)])
    tok.add_special_tokens(list(SPECIAL_TOKENS))  # ids vocab_size, +1, +2 as in the Qwen2 layout
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(SPECIAL_TOKENS),
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_bert_tokenizer(folder: Path, extra_words: Iterable[str] = ()):
    """A word-level BERT tokenizer (vocab.txt) covering the task prompt and emotion words."""
    from transformers import BertTokenizer

    words: set[str] = set(extra_words)
    for text in _corpus():
        for raw in text.lower().replace("<", " < ").replace(">", " > ").replace("/", " / ").split():
            words.update(piece for piece in (raw.strip(".,;?!"), raw[-1:]) if piece)
    vocab = list(BERT_SPECIALS) + sorted(words - set(BERT_SPECIALS))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True), len(vocab)


def write_tiny_release(root: str | os.PathLike[str], *, seed: int = 0, num_frames: int = 4) -> Path:
    """Write a tiny random HumanOmni release under `root`; returns the checkpoint folder."""
    from erv.model import preset_config

    return write_release(
        root, preset_config("humanomni-tiny", num_frames=num_frames, tie_word_embeddings=False), seed=seed
    )


def write_preprocessors(config: Any, vision_dir: Path, audio_dir: Path) -> None:
    """The SigLIP image-processor and Whisper feature-extractor configs that match `config`'s towers."""
    from transformers import SiglipImageProcessor, WhisperFeatureExtractor

    side = config.vision_config.image_size
    SiglipImageProcessor(size={"height": side, "width": side}).save_pretrained(vision_dir)
    mel_frames = 2 * config.audio_config.max_source_positions
    WhisperFeatureExtractor(
        feature_size=config.audio_config.num_mel_bins, chunk_length=mel_frames // 100
    ).save_pretrained(audio_dir)


def write_release(
    root: str | os.PathLike[str],
    config: Any,
    *,
    seed: int = 0,
    head_scale: float = 20.0,
    texts: Sequence[str] = (),
) -> Path:
    """Write a random HumanOmni release of any size under `root` (towers, BERT, tokenizers).

    The towers go to the folders the config names (`mm_vision_tower`, `mm_audio_tower`,
    `mm_bert_tower`, relative to `root`); the LLM tokenizer covers `config.vocab_size - 12`
    byte-level pieces (trained on the task prompt, the labels and `texts`) plus the ChatML
    specials. `head_scale` sharpens the LM head, because a random model otherwise emits
    near-uniform logits (1.0 keeps the initialisation, for a model that will be trained).
    """
    import torch
    from transformers import BertModel, SiglipVisionModel, WhisperForConditionalGeneration

    from erv.model import build_model

    root = Path(root)
    torch.manual_seed(seed)
    bert_dir = root / config.mm_bert_tower
    bert_tokenizer, bert_vocab = build_bert_tokenizer(bert_dir)
    config.bert_config.vocab_size = bert_vocab

    SiglipVisionModel(config.vision_config).save_pretrained(root / config.mm_vision_tower)
    WhisperForConditionalGeneration(config.audio_config).save_pretrained(root / config.mm_audio_tower)
    write_preprocessors(config, root / config.mm_vision_tower, root / config.mm_audio_tower)

    BertModel(config.bert_config, add_pooling_layer=True).save_pretrained(bert_dir)
    bert_tokenizer.save_pretrained(bert_dir)

    model = build_model(config, dtype=torch.float32)
    with torch.no_grad():
        model.lm_head.weight.mul_(head_scale)
    checkpoint = root / "checkpoint"
    model.save_pretrained(checkpoint)
    tokenizer = build_llm_tokenizer(config.vocab_size - 12, texts)
    tokenizer.save_pretrained(checkpoint)
    return checkpoint
