"""HumanOmni processor: (video, audio, instruction) -> model inputs, and generated ids -> text.

Why one object: the reference builds prompts, BERT questions, frames and Whisper features in
four places (mm_infer, the SFT dataset, the GRPO trainer, the eval script), each slightly
differently and one sample at a time. This processor reproduces each of those prompt styles
exactly, batches them with left padding for generation, and loads media through
:mod:`erv.media`. User documentation: docs/processor.md.

Prompt styles (docs/reference.md §11; the default is the inference one):

* ``"inference"`` (mm_infer): user turn ``<video>\\n<audio>\\n{instruction}``, the checkpoint's
  chat template with a generation prompt, then ``<video>`` -> ``<vi_start><video><vi_end>``
  (likewise audio/image) over the whole text when ``mm_use_x_start_end``; BERT question = the
  instruction.
* ``"sft"`` (train_humanomni.py): tags moved to the front and wrapped, three newlines before
  the question; BERT question = that user turn with ``<image>``, ``<video>`` and newlines
  removed (the wrapper text stays).
* ``"grpo"`` (humanOmni_grpo_ERV.py): the Qwen2-VL video item
  ``<|vision_start|><|video_pad|><|vision_end|>`` before the wrapped tags, one newline;
  BERT question = the instruction.

Placeholders: ``<video>`` -> -201, ``<audio>`` -> -202, ``<image>`` -> -200; the text between
them is tokenised chunk by chunk without special tokens (``tokenizer_multimodal_token``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from erv.errors import ConfigError, MediaError
from erv.media import (
    NUM_FRAMES,
    AspectRatio,
    AudioFeatureExtractor,
    AudioMode,
    FrameProcessor,
    MediaProcessor,
    MediaSample,
    MissingAudioPolicy,
    VideoBackend,
)
from erv.model.checkpoint import checkpoint_dir as local_checkpoint_dir
from erv.model.checkpoint import read_checkpoint_config
from erv.model.constants import IGNORE_INDEX, PLACEHOLDER_IDS
from erv.model.paths import config_get

if TYPE_CHECKING:  # pragma: no cover
    from transformers import BatchFeature

_PLACEHOLDER_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in PLACEHOLDER_IDS) + ")")

WRAPPERS = {
    "<video>": "<vi_start><video><vi_end>",
    "<image>": "<im_start><image><im_end>",
    "<audio>": "<au_start><audio><au_end>",
}
MODAL_TOKENS = {
    "video_audio": "<video>\n<audio>",
    "video": "<video>",
    "audio": "<audio>",
    "image": "<image>",
    "text": "",
}
QWEN2VL_VIDEO_ITEM = "<|vision_start|><|video_pad|><|vision_end|>"
GRPO_TAGS = "<vi_start><video><vi_end>\n<au_start><audio><au_end>\n"
PROMPT_STYLES = ("inference", "sft", "grpo")
PromptStyle = Literal["inference", "sft", "grpo"]
Modal = Literal["video_audio", "video", "audio", "image", "text"]

# mm_infer adds this LLaMA-2 system prompt for these model types only (not HumanOmni_qwen2).
_LLAMA2_SYSTEM_MODEL_TYPES = ("HumanOmni", "HumanOmni_mistral", "HumanOmni_mixtral")
_LLAMA2_SYSTEM = (
    "<<SYS>>\nYou are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe.  Your answers should not include any harmful, unethical, racist, sexist, toxic, "
    "dangerous, or illegal content. Please ensure that your responses are socially unbiased and positive "
    "in nature.\nIf a question does not make any sense, or is not factually coherent, explain why instead "
    "of answering something not correct. If you don't know the answer to a question, please don't share "
    "false information.\n<</SYS>>"
)

MODEL_INPUT_NAMES = (
    "input_ids",
    "attention_mask",
    "pixel_values_videos",
    "audio_input_features",
    "bert_input_ids",
    "bert_attention_mask",
    "bert_token_type_ids",
)


def sft_user_turn(human_value: str, *, wrap: bool) -> str:
    """The SFT user turn as train_humanomni.py builds it from a record's human value.

    `add_audio_token_to_sources` adds `<audio>` after `<video>`; `preprocess_multimodal` then,
    for `<audio>`, `<video>`, `<image>` in that order, removes the tag, strips, puts it in front
    followed by a newline and (with `mm_use_x_start_end`) wraps it. The usual result is
    `<vi_start><video><vi_end>\\n<au_start><audio><au_end>\\n\\n\\nQ`.
    """
    value = human_value
    has_video, has_audio = "<video>" in value, "<audio>" in value
    if has_video and not has_audio:
        value = value.replace("<video>\n", "<video>\n<audio>\n")
    elif has_audio and not has_video:
        value = value.replace("<audio>\n", "<video>\n<audio>\n")
    for tag in ("<audio>", "<video>", "<image>"):
        if tag in value:
            value = value.replace(tag, "").strip()
            value = (tag + "\n" + value).strip()
        if wrap:
            value = value.replace(tag, WRAPPERS[tag])
    return value


def sft_bert_question(user_turn: str) -> str:
    """The BERT question SFT used: the user turn without `<image>`, `<video>` and newlines."""
    return user_turn.replace("<image>", "").replace("\n", "").replace("<video>", "")


def strip_modal_tags(text: str) -> str:
    """An instruction from a record's human value: `<video>`/`<audio>`/`<image>` tags removed."""
    return re.sub(r"<(?:video|audio|image)>\n?", "", text).strip()


@dataclass
class EncodedPrompt:
    """One prompt: its text, token ids (with placeholders) and the BERT question."""

    text: str
    input_ids: list[int]
    question: str


class HumanOmniProcessor:
    """Builds HumanOmni inputs exactly as the reference, batched; decodes generated ids."""

    model_input_names = MODEL_INPUT_NAMES

    def __init__(
        self,
        tokenizer: Any,
        bert_tokenizer: Any,
        media: MediaProcessor,
        *,
        mm_use_x_start_end: bool = True,
        model_type: str = "HumanOmni_qwen2",
        prompt_style: PromptStyle = "inference",
        modal: Modal = "video_audio",
    ) -> None:
        if prompt_style not in PROMPT_STYLES:
            raise ConfigError(f"unknown prompt style {prompt_style!r}; choose one of {PROMPT_STYLES}")
        if modal not in MODAL_TOKENS:
            raise ConfigError(f"unknown modal {modal!r}; choose one of {tuple(MODAL_TOKENS)}")
        self.tokenizer = tokenizer
        self.bert_tokenizer = bert_tokenizer
        self.media = media
        self.mm_use_x_start_end = bool(mm_use_x_start_end)
        self.model_type = model_type
        self.prompt_style = prompt_style
        self.modal = modal
        if getattr(tokenizer, "chat_template", None) is None:
            raise ConfigError(
                "the LLM tokenizer has no chat template; the checkpoint folder must "
                "contain one (tokenizer_config.json or chat_template.json)"
            )

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_pretrained(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        *,
        vision_tower: str,
        audio_tower: str,
        bert: str,
        config: Any = None,
        prompt_style: PromptStyle = "inference",
        modal: Modal = "video_audio",
        aspect_ratio: AspectRatio = None,
        audio_mode: AudioMode = "ffmpeg",
        on_missing_audio: MissingAudioPolicy = "zeros",
        video_backend: VideoBackend = "pyav",
        decode_threads: int | str | None = "auto",
        exact_audio_features: bool = False,
        num_frames: int | None = None,
    ) -> HumanOmniProcessor:
        """Load tokenizers and media settings; tower/BERT locations must already be resolved.

        `config` is the checkpoint's config object/dict or None (then config.json is read) and
        provides `num_frames` (default 8), `mm_use_x_start_end` and `model_type`.
        """
        folder = local_checkpoint_dir(checkpoint_dir)
        if config is None:
            config = read_checkpoint_config(folder)
        checkpoint_dir = str(folder)
        tokenizer = load_tokenizer(checkpoint_dir, "LLM tokenizer")
        if getattr(tokenizer, "chat_template", None) is None:
            _adopt_processor_chat_template(tokenizer, checkpoint_dir)
        bert_tokenizer = load_tokenizer(str(bert), "BERT tokenizer")
        if tokenizer.pad_token is None and getattr(tokenizer, "unk_token", None) is not None:
            tokenizer.pad_token = tokenizer.unk_token  # as model_init does
        frames = (
            num_frames if num_frames is not None else int(config_get(config, "num_frames", NUM_FRAMES) or NUM_FRAMES)
        )
        media = MediaProcessor(
            FrameProcessor.from_pretrained(vision_tower),
            AudioFeatureExtractor.from_pretrained(audio_tower, exact=exact_audio_features),
            num_frames=frames,
            aspect_ratio=aspect_ratio,
            audio_mode=audio_mode,
            on_missing_audio=on_missing_audio,
            video_backend=video_backend,
            decode_threads=decode_threads,
        )
        return cls(
            tokenizer,
            bert_tokenizer,
            media,
            mm_use_x_start_end=bool(config_get(config, "mm_use_x_start_end", False)),
            model_type=str(config_get(config, "model_type", "HumanOmni_qwen2")),
            prompt_style=prompt_style,
            modal=modal,
        )

    # ---------------------------------------------------------------- prompts
    @property
    def pad_token_id(self) -> int:
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad is None:
            raise ConfigError("the LLM tokenizer has neither a pad nor an eos token")
        return int(pad)

    def _style(self, style: str | None) -> str:
        style = style or self.prompt_style
        if style not in PROMPT_STYLES:
            raise ConfigError(f"unknown prompt style {style!r}; choose one of {PROMPT_STYLES}")
        return style

    def _modal(self, modal: str | None) -> str:
        modal = modal or self.modal
        if modal not in MODAL_TOKENS:
            raise ConfigError(f"unknown modal {modal!r}; choose one of {tuple(MODAL_TOKENS)}")
        return modal

    def user_turn(self, instruction: str, *, style: str | None = None, modal: str | None = None) -> str:
        """Content of the user message before the chat template (see the module doc)."""
        style, modal = self._style(style), self._modal(modal)
        modal_token = MODAL_TOKENS[modal]
        if style == "inference":
            return modal_token + "\n" + instruction
        if style == "sft":
            human = (modal_token + "\n" + instruction) if modal_token else instruction
            return sft_user_turn(human, wrap=self.mm_use_x_start_end)
        if modal != "video_audio":
            raise ConfigError("the 'grpo' prompt style exists only for video+audio prompts")
        return QWEN2VL_VIDEO_ITEM + GRPO_TAGS + instruction

    def default_question(self, instruction: str, *, style: str | None = None, modal: str | None = None) -> str:
        """The BERT question each style used: the instruction, or SFT's cleaned user turn."""
        if self._style(style) == "sft":
            return sft_bert_question(self.user_turn(instruction, style="sft", modal=modal))
        return instruction

    def _messages(self, instruction: str | list[dict[str, Any]], style: str, modal: str) -> list[dict[str, Any]]:
        if isinstance(instruction, list):
            if style != "inference":
                raise ConfigError("message-list instructions are supported by the inference style only")
            messages = [dict(m) for m in instruction]
            if not messages:
                raise ConfigError("empty message list")
            messages[0]["content"] = MODAL_TOKENS[modal] + "\n" + messages[0]["content"]
        else:
            messages = [{"role": "user", "content": self.user_turn(instruction, style=style, modal=modal)}]
        if style == "inference" and self.model_type in _LLAMA2_SYSTEM_MODEL_TYPES:
            messages = [{"role": "system", "content": _LLAMA2_SYSTEM}] + messages
        return messages

    def _render(self, messages: list[dict[str, Any]], style: str, *, add_generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        if style == "inference" and self.mm_use_x_start_end:
            for tag, wrapped in WRAPPERS.items():
                text = text.replace(tag, wrapped)
        return text

    def prompt_text(
        self, instruction: str | list[dict[str, Any]], *, style: str | None = None, modal: str | None = None
    ) -> str:
        """The full prompt text (chat template applied, ending with the assistant header)."""
        style, modal = self._style(style), self._modal(modal)
        return self._render(self._messages(instruction, style, modal), style, add_generation_prompt=True)

    def tokenize_multimodal(self, text: str) -> list[int]:
        """Token ids of `text`, with -200/-201/-202 for `<image>`/`<video>`/`<audio>`."""
        ids: list[int] = []
        for chunk in _PLACEHOLDER_SPLIT.split(text):
            if chunk in PLACEHOLDER_IDS:
                ids.append(PLACEHOLDER_IDS[chunk])
            elif chunk:
                ids.extend(self.tokenizer(chunk, add_special_tokens=False)["input_ids"])
        return ids

    def encode_prompt(
        self,
        instruction: str | list[dict[str, Any]],
        *,
        question: str | None = None,
        style: str | None = None,
        modal: str | None = None,
    ) -> EncodedPrompt:
        style, modal = self._style(style), self._modal(modal)
        text = self.prompt_text(instruction, style=style, modal=modal)
        if question is None:
            if not isinstance(instruction, str):
                raise ConfigError("a message-list instruction needs an explicit BERT question")
            question = self.default_question(instruction, style=style, modal=modal)
        return EncodedPrompt(text, self.tokenize_multimodal(text), question)

    def build_training_example(
        self,
        instruction: str,
        answer: str,
        *,
        question: str | None = None,
        style: str | None = "sft",
        modal: str | None = None,
    ) -> dict[str, Any]:
        """Token ids and labels of one supervised example: the prompt is masked with -100.

        As train_humanomni.py `preprocess`: the whole conversation is rendered with the chat
        template, and the first len(prompt with generation header) tokens are masked, so the
        answer and the template's end-of-turn tokens are supervised.
        """
        style, modal = self._style(style), self._modal(modal)
        messages = self._messages(instruction, style, modal)
        prompt = self._render(messages, style, add_generation_prompt=True)
        full = self._render(messages + [{"role": "assistant", "content": answer}], style, add_generation_prompt=False)
        prompt_len = len(self.tokenize_multimodal(prompt))
        ids = self.tokenize_multimodal(full)
        if prompt_len >= len(ids):
            raise ConfigError(f"the answer adds no tokens after the prompt (answer={answer[:40]!r})")
        labels = [IGNORE_INDEX] * prompt_len + ids[prompt_len:]
        labels = [IGNORE_INDEX if t < 0 else t for t in labels]
        if question is None:
            question = self.default_question(instruction, style=style, modal=modal)
        return {"input_ids": ids, "labels": labels, "question": question, "prompt_length": prompt_len}

    # ---------------------------------------------------------------- batching
    def pad_sequences(
        self, sequences: Sequence[Sequence[int]], *, padding_side: str = "left", pad_value: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) padded to the longest; mask is 1 on every real token incl. placeholders."""
        if padding_side not in ("left", "right"):
            raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if not sequences:
            raise ConfigError("no sequences to pad")
        pad = self.pad_token_id if pad_value is None else pad_value
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            n = len(seq)
            if n == 0:
                continue
            sl = slice(width - n, width) if padding_side == "left" else slice(0, n)
            ids[row, sl] = torch.as_tensor(list(seq), dtype=torch.long)
            mask[row, sl] = 1
        return ids, mask

    def encode_questions(self, questions: Sequence[str]) -> dict[str, torch.Tensor]:
        """BERT inputs of the questions, padded as the reference (`padding=True, truncation=True`)."""
        enc = self.bert_tokenizer(
            list(questions), return_tensors="pt", padding=True, truncation=True, add_special_tokens=True
        )
        ids = enc["input_ids"]
        return {
            "bert_input_ids": ids,
            "bert_attention_mask": enc.get("attention_mask", torch.ones_like(ids)),
            "bert_token_type_ids": enc.get("token_type_ids", torch.zeros_like(ids)),
        }

    def tokenize_question(self, question: str) -> dict[str, list[int]]:
        """One question's BERT ids (no padding), for per-item work in DataLoader workers."""
        enc = self.bert_tokenizer(question, truncation=True, add_special_tokens=True)
        ids = list(enc["input_ids"])
        return {
            "input_ids": ids,
            "token_type_ids": list(enc.get("token_type_ids", [0] * len(ids))),
            "attention_mask": list(enc.get("attention_mask", [1] * len(ids))),
        }

    def pad_questions(self, items: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        """Pad per-item BERT encodings exactly as batch tokenisation with `padding=True` would."""
        side = getattr(self.bert_tokenizer, "padding_side", "right")
        pad_id = self.bert_tokenizer.pad_token_id or 0
        width = max(len(it["input_ids"]) for it in items)
        out = {
            k: torch.zeros((len(items), width), dtype=torch.long)
            for k in ("bert_input_ids", "bert_attention_mask", "bert_token_type_ids")
        }
        out["bert_input_ids"].fill_(pad_id)
        for row, it in enumerate(items):
            n = len(it["input_ids"])
            sl = slice(width - n, width) if side == "left" else slice(0, n)
            out["bert_input_ids"][row, sl] = torch.tensor(it["input_ids"])
            out["bert_attention_mask"][row, sl] = torch.tensor(it["attention_mask"])
            out["bert_token_type_ids"][row, sl] = torch.tensor(it["token_type_ids"])
        return out

    def stack_media(self, samples: Sequence[MediaSample], *, with_audio: bool = True) -> dict[str, torch.Tensor]:
        frames = {tuple(s.pixel_values.shape) for s in samples}
        if len(frames) != 1:
            raise MediaError(f"videos of one batch must have the same frame count and size, got {sorted(frames)}")
        out = {
            "pixel_values_videos": torch.stack([s.pixel_values for s in samples]),
            "audio_missing": torch.tensor([bool(s.audio_missing) for s in samples], dtype=torch.bool),
        }
        if with_audio:
            if any(s.audio_features is None for s in samples):
                raise MediaError("a sample of this batch has no audio features")
            out["audio_input_features"] = torch.stack([s.audio_features for s in samples])
        return out

    # ---------------------------------------------------------------- media
    def load_media(
        self,
        video: Any,
        audio: Any = None,
        *,
        modal: str | None = None,
        start: float | None = None,
        end: float | None = None,
        aspect_ratio: AspectRatio | str = "default",
    ) -> MediaSample | None:
        """Frames + features of one sample (None when skipped by the missing-audio policy)."""
        modal = self._modal(modal)
        if isinstance(video, MediaSample):
            return video
        if modal == "image":
            raise ConfigError(
                "image inputs are not supported (HumanOmni checkpoints here are video models); "
                "pass the image as a one-frame video with modal='video'"
            )
        return self.media.load(
            video,
            audio,
            start=start,
            end=end,
            aspect_ratio=aspect_ratio,
            with_video=modal in ("video_audio", "video"),
            with_audio=modal in ("video_audio", "audio"),
        )

    # ---------------------------------------------------------------- the call
    def __call__(
        self,
        videos: Any = None,
        instructions: str | Sequence[str] | None = None,
        audios: Any = None,
        *,
        questions: str | Sequence[str] | None = None,
        modal: str | None = None,
        prompt_style: str | None = None,
        aspect_ratio: AspectRatio | str = "default",
        padding_side: str = "left",
        starts: Sequence[float | None] | float | None = None,
        ends: Sequence[float | None] | float | None = None,
    ) -> BatchFeature:
        """Model inputs for a batch (or one sample when `instructions` is a string).

        `videos`: paths (video file or frame folder), frame arrays/lists, or preloaded
        :class:`MediaSample` s. `audios`: None (read the video file's own audio track), a path,
        or a 16 kHz mono waveform, per sample. Samples skipped by `on_missing_audio="skip"` are
        left out; `sample_index` gives the position of each kept sample and `skipped` the rest.
        """
        from transformers import BatchFeature

        if instructions is None:
            raise ConfigError("instructions are required (the prompt text and the BERT question)")
        single = isinstance(instructions, str)
        instr = [instructions] if single else list(instructions)
        n = len(instr)
        vids = [videos] if single else (list(videos) if videos is not None else [None] * n)
        auds = [audios] if single else (list(audios) if audios is not None else [None] * n)
        ques = (
            ([questions] if isinstance(questions, str) else list(questions)) if questions is not None else [None] * n
        )
        if single:
            starts, ends = [starts], [ends]  # one sample: a start and an end in seconds (or None)
        starts = list(starts) if starts is not None else [None] * n
        ends = list(ends) if ends is not None else [None] * n
        for name, seq in (("videos", vids), ("audios", auds), ("questions", ques), ("starts", starts), ("ends", ends)):
            if len(seq) != n:
                raise ConfigError(f"{name} has {len(seq)} entries for {n} instructions")
        style, modal = self._style(prompt_style), self._modal(modal)
        needs_video = modal in ("video_audio", "video")
        kept, skipped, samples, prompts = [], [], [], []
        for i in range(n):
            if needs_video and vids[i] is None:
                raise ConfigError(f"sample {i}: no video given for modal {modal!r}")
            sample = self.load_media(
                vids[i], auds[i], modal=modal, start=starts[i], end=ends[i], aspect_ratio=aspect_ratio
            )
            if sample is None:
                skipped.append(i)
                continue
            kept.append(i)
            samples.append(sample)
            prompts.append(self.encode_prompt(instr[i], question=ques[i], style=style, modal=modal))
        data: dict[str, Any] = {"sample_index": torch.tensor(kept, dtype=torch.long), "skipped": skipped}
        if kept:
            ids, mask = self.pad_sequences([p.input_ids for p in prompts], padding_side=padding_side)
            data.update(input_ids=ids, attention_mask=mask)
            data.update(self.stack_media(samples, with_audio=modal in ("video_audio", "audio")))
            data.update(self.encode_questions([p.question for p in prompts]))
        return BatchFeature(data=data)

    def model_inputs(self, batch: Any) -> dict[str, Any]:
        """The tensors `model.forward`/`generate` take, without the bookkeeping keys
        (`sample_index`, `skipped`, `audio_missing`) that would make `generate` refuse them."""
        return {name: batch[name] for name in self.model_input_names if name in batch}

    # ---------------------------------------------------------------- decoding
    def batch_decode(self, sequences: Any, *, skip_special_tokens: bool = True) -> list[str]:
        """Texts of generated ids (placeholders and padding dropped), stripped as mm_infer does."""
        if isinstance(sequences, torch.Tensor):
            sequences = sequences.tolist()
        rows = [[int(t) for t in row if int(t) >= 0] for row in sequences]
        texts = self.tokenizer.batch_decode(rows, skip_special_tokens=skip_special_tokens)
        return [t.strip() for t in texts]

    def decode(self, ids: Any, *, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        if ids and isinstance(ids[0], (list, tuple)):
            if len(ids) != 1:
                raise ConfigError("decode takes one sequence; use batch_decode for a batch")
            ids = ids[0]
        return self.batch_decode([ids], skip_special_tokens=skip_special_tokens)[0]


def load_tokenizer(location: str, what: str = "tokenizer") -> Any:
    """A tokenizer by the class its tokenizer_config.json names, else through AutoTokenizer.

    Going by the class avoids AutoTokenizer reading the checkpoint's config.json, whose
    `HumanOmni_qwen2` model type transformers does not know unless erv.model registered it.
    """
    from transformers import AutoTokenizer

    try:
        cfg_file = Path(location) / "tokenizer_config.json"
        if cfg_file.is_file():
            name = json.loads(cfg_file.read_text()).get("tokenizer_class")
            if name:
                from transformers.models.auto.tokenization_auto import tokenizer_class_from_name

                cls = tokenizer_class_from_name(name)
                if cls is not None:
                    return cls.from_pretrained(location)
        return AutoTokenizer.from_pretrained(location)
    except Exception as exc:
        raise ConfigError(f"cannot load the {what} from {location!r}: {exc}") from exc


def _adopt_processor_chat_template(tokenizer: Any, checkpoint_dir: str) -> None:
    """Use `chat_template.json` / `chat_template.jinja` when tokenizer_config.json has no template.

    Checkpoints saved through a multimodal processor (Qwen2-VL's, as R1-Omni's GRPO trainer
    does) may keep the template in these files instead of the tokenizer config.
    """
    folder = Path(checkpoint_dir)
    try:
        if (folder / "chat_template.jinja").is_file():
            tokenizer.chat_template = (folder / "chat_template.jinja").read_text()
        elif (folder / "chat_template.json").is_file():
            template = json.loads((folder / "chat_template.json").read_text()).get("chat_template")
            if isinstance(template, str):
                tokenizer.chat_template = template
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the chat template in {checkpoint_dir}: {exc}") from exc
