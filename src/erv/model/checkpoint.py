"""Reading a HumanOmni checkpoint folder (HumanOmni, R1-Omni, EMER-SFT, ERV releases or our own saves).

What happens, in order (docs/reference.md §6 for the reference's behaviour this reproduces):

1. The checkpoint folder is checked (exists, has config.json of model_type `HumanOmni_qwen2`).
2. SigLIP, Whisper and BERT locations are resolved with `erv.model.paths.resolve_components`
   (explicit argument > config field > `components_dir` / the checkpoint's parent / the
   checkpoint folder; hub ids are left to transformers' cache). Nothing is baked in.
3. Their configs complete the model config (`vision_config`, `audio_config`, `bert_config`):
   with `tower_weights="original"` the towers' configs come from their folders; BERT's
   config always comes from a config stored with the checkpoint if there is one, else from the
   BERT folder (head counts are not recoverable from weights).
4. If the checkpoint has `model.feature_compressor.*` keys (upstream HumanOmni's slow-fast
   compressor), `mm_feature_compressor = "slow_fast"` is set: nothing in config.json records it.
5. All weights in the checkpoint are loaded. Every key must find its parameter and every
   parameter its key, except: the Whisper classification head (never used); the tower copies
   when `tower_weights="original"`; BERT, which falls back to the BERT folder's weights with a
   warning (what the reference ends up with when a checkpoint lacks them). Anything else is a
   ConfigError naming the keys.
6. `tower_weights="original"` (the reference's behaviour): SigLIP and Whisper weights are then
   read from the resolved tower folders, replacing the checkpoint's copies (the reference
   ignores those copies; for R1-Omni they are identical, ERV's vision copy may differ).
   `tower_weights="checkpoint"` keeps the copies stored in the checkpoint instead.
7. The towers are frozen (`requires_grad=False`), as the reference's `load_model` does.

`tower_weights=None` (the default of the entry points) means: what the checkpoint's config.json
records under `tower_weights` (`erv sft` / `erv grpo` save "checkpoint", because their tower copies
may have been trained), else "original" (released checkpoints record nothing).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from erv.errors import ConfigError
from erv.io.locations import resolve_model_location
from erv.model.configuration import MODEL_TYPE, HumanOmniQwen2Config
from erv.model.paths import ComponentPaths, config_get, resolve_components

logger = logging.getLogger(__name__)

TOWER_WEIGHTS = ("original", "checkpoint")
TOWER_WEIGHTS_KEY = "tower_weights"  # config.json field: which tower weights the checkpoint wants loaded
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "auto")
VISION_PREFIX = "model.vision_tower."
AUDIO_PREFIX = "model.audio_tower."
AUDIO_HEAD_PREFIXES = ("model.audio_tower.audio_tower.projector.", "model.audio_tower.audio_tower.classifier.")
BERT_PREFIX = "model.bert_model."
COMPRESSOR_PREFIX = "model.feature_compressor."


# --------------------------------------------------------------------------------- checkpoint folder
def checkpoint_dir(path: str | os.PathLike[str]) -> Path:
    """The local checkpoint folder for `path`: a folder, or a hub id (the local cache first, then fetched).

    A missing folder fails at once, also when it looks like a hub id (`outputs/sft`), and an
    offline hub id that is not cached too: :func:`erv.io.locations.resolve_model_location`.
    """
    if not path:
        raise ConfigError("no checkpoint path given")
    location = resolve_model_location(path, "checkpoint")
    local = Path(location)
    if local.is_dir():
        return local
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id=location))
    except Exception as exc:  # unknown repo, no permission, interrupted download ...
        raise ConfigError(
            f"checkpoint {location} could not be fetched from the hub ({type(exc).__name__}: {exc})"
        ) from exc


def read_checkpoint_config(ckpt: Path) -> dict[str, Any]:
    cfg_file = ckpt / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{ckpt} is not a HumanOmni checkpoint: it has no config.json")
    try:
        data = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{cfg_file} cannot be read as JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{cfg_file} does not hold a JSON object")
    model_type = data.get("model_type")
    if model_type != MODEL_TYPE:
        raise ConfigError(
            f"{cfg_file} has model_type {model_type!r}, expected {MODEL_TYPE!r} "
            f"(a HumanOmni / R1-Omni / ERV checkpoint)"
        )
    return data


def checkpoint_keys(ckpt: Path) -> set[str]:
    """Names of the tensors stored in the checkpoint (safetensors or PyTorch, sharded or not)."""
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = ckpt / index_name
        if index.is_file():
            try:
                return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
            except (OSError, KeyError, json.JSONDecodeError) as exc:
                raise ConfigError(f"{index} is not a valid weight index: {exc}") from exc
    single = ckpt / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(single), framework="pt") as handle:
                return set(handle.keys())
        except Exception as exc:
            raise ConfigError(f"{single} is not a readable safetensors file: {exc}") from exc
    legacy = ckpt / "pytorch_model.bin"
    if legacy.is_file():
        try:
            return set(torch.load(legacy, map_location="meta", weights_only=True, mmap=True))
        except Exception as exc:
            raise ConfigError(f"{legacy} cannot be read: {exc}") from exc
    raise ConfigError(f"{ckpt} has no weights (model.safetensors, a sharded index or pytorch_model.bin)")


# --------------------------------------------------------------------------------- options
def resolve_dtype(torch_dtype: torch.dtype | str | None) -> torch.dtype | str:
    """None -> bfloat16 (our default, the released weights' dtype); "auto" -> the checkpoint's dtype."""
    if torch_dtype is None:
        return torch.bfloat16
    if isinstance(torch_dtype, torch.dtype) or torch_dtype == "auto":
        return torch_dtype
    value = getattr(torch, str(torch_dtype).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ConfigError(f"unsupported torch_dtype {torch_dtype!r}; use bfloat16, float16, float32 or 'auto'")
    return value


def resolve_attn_implementation(name: str | None, device_map: Any = None) -> str:
    """`sdpa` by default; `flash_attention_2` only when the flash-attn package is installed."""
    from transformers.utils import is_flash_attn_2_available

    name = name or "sdpa"
    if name not in ATTN_IMPLEMENTATIONS:
        raise ConfigError(f"unsupported attn_implementation {name!r}; choose one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    if name == "auto":
        return "flash_attention_2" if is_flash_attn_2_available() and torch.cuda.is_available() else "sdpa"
    if name == "flash_attention_2" and not is_flash_attn_2_available():
        raise ConfigError(
            "attn_implementation='flash_attention_2' needs the flash-attn package "
            "(pip install -e .[flash-attn]); use 'sdpa' otherwise"
        )
    return name


def recorded_tower_weights(config: Any) -> str:
    """The `tower_weights` a checkpoint's config (object or dict) asks for; "original" when it says nothing."""
    value = config_get(config, TOWER_WEIGHTS_KEY)
    if value is None:
        return "original"
    if value not in TOWER_WEIGHTS:
        raise ConfigError(
            f"the checkpoint config's {TOWER_WEIGHTS_KEY!r} must be one of {TOWER_WEIGHTS}, got {value!r}"
        )
    return str(value)


# --------------------------------------------------------------------------------- config
def _sub_config(cls: Any, location: str, what: str) -> Any:
    folder = Path(location)
    if folder.is_dir() and not (folder / "config.json").is_file():
        # transformers would silently return a default config for such a folder
        raise ConfigError(f"the {what} folder {folder} has no config.json")
    try:
        return cls.from_pretrained(location)
    except Exception as exc:
        raise ConfigError(
            f"cannot read the {what} config from {location!r} ({type(exc).__name__}: {exc}); "
            f"pass its folder explicitly or a components_dir that contains it"
        ) from exc


def prepare_config(
    path: str | os.PathLike[str],
    *,
    config: HumanOmniQwen2Config | None = None,
    vision_tower: str | None = None,
    audio_tower: str | None = None,
    bert: str | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    tower_weights: str | None = "original",
) -> tuple[Path, HumanOmniQwen2Config, ComponentPaths, str]:
    """Check the folder and complete its config (module doc, steps 1-4); also returns the
    `tower_weights` in force (None: what the config records)."""
    from transformers import BertConfig, SiglipVisionConfig, WhisperConfig

    if tower_weights not in TOWER_WEIGHTS + (None,):
        raise ConfigError(f"tower_weights must be one of {TOWER_WEIGHTS}, got {tower_weights!r}")
    ckpt = checkpoint_dir(path)
    raw_config = read_checkpoint_config(ckpt)
    if tower_weights is None:
        tower_weights = recorded_tower_weights(config if config is not None else raw_config)
    keys = checkpoint_keys(ckpt)
    if config is None:
        try:
            config = HumanOmniQwen2Config.from_pretrained(str(ckpt))
        except Exception as exc:
            raise ConfigError(f"{ckpt / 'config.json'} is not a valid HumanOmni config: {exc}") from exc
    elif not isinstance(config, HumanOmniQwen2Config):
        raise ConfigError(f"config must be a HumanOmniQwen2Config, got {type(config).__name__}")
    else:
        config = config.__class__.from_dict(config.to_dict())  # never mutate the caller's object
    try:
        paths = resolve_components(
            ckpt, config, vision_tower=vision_tower, audio_tower=audio_tower, bert=bert, components_dir=components_dir
        )
    except ConfigError as exc:
        self_contained = (
            tower_weights == "checkpoint"
            and config.vision_config is not None
            and config.audio_config is not None
            and config.bert_config is not None
        )
        if not self_contained:
            raise
        # Everything needed is stored with the checkpoint; the folders only matter to the processor.
        logger.warning("%s; loading the model from the checkpoint alone (tower_weights='checkpoint')", exc)
        paths = ComponentPaths(
            vision_tower=vision_tower or config.mm_vision_tower or "",
            audio_tower=audio_tower or config.mm_audio_tower or "",
            bert=bert or config.mm_bert_tower or "",
        )

    if tower_weights == "original" or config.vision_config is None:
        config.vision_config = _sub_config(SiglipVisionConfig, paths.vision_tower, "vision tower (SigLIP)")
    if tower_weights == "original" or config.audio_config is None:
        config.audio_config = _sub_config(WhisperConfig, paths.audio_tower, "audio tower (Whisper)")
    if config.bert_config is None:
        config.bert_config = _sub_config(BertConfig, paths.bert, "BERT text encoder")
    if config.mm_hidden_size is None:
        config.mm_hidden_size = config.vision_config.hidden_size
    config.sync_tower_fields()
    config.mm_vision_tower, config.mm_audio_tower, config.mm_bert_tower = (
        paths.vision_tower,
        paths.audio_tower,
        paths.bert,
    )

    if any(k.startswith(COMPRESSOR_PREFIX) for k in keys) and config.mm_feature_compressor is None:
        logger.info(
            "%s holds model.feature_compressor.* weights (upstream HumanOmni): enabling the slow-fast "
            "video token compressor",
            ckpt,
        )
        config.mm_feature_compressor = "slow_fast"
    return ckpt, config, paths, tower_weights


# --------------------------------------------------------------------------------- weights
def _fmt_keys(keys: set[str] | list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


class _DropLoadReport(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "LOAD REPORT" not in str(record.msg)


@contextlib.contextmanager
def quiet_transformers_loading() -> Iterator[None]:
    """Drop transformers' load report: expected differences (a Whisper decoder in the tower folder,
    tower copies replaced later) are not news, and real problems get our own ConfigError instead."""
    hf_logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _DropLoadReport()
    hf_logger.addFilter(report_filter)
    try:
        yield
    finally:
        hf_logger.removeFilter(report_filter)


@contextlib.contextmanager
def unpartitioned_loading() -> Iterator[None]:
    """Models built inside stay whole even under ZeRO-3: a temporary tower whose weights are only
    copied into the partitioned target (transformers' Whisper initialisation fails on partitioned
    tensors), or a reward's own small model (the verifier), which every rank keeps entire."""
    from transformers.integrations import deepspeed as hf_deepspeed

    ref = hf_deepspeed._hf_deepspeed_config_weak_ref
    config = ref() if ref is not None else None
    if config is None:
        yield
        return
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        hf_deepspeed.set_hf_deepspeed_config(config)


def _load_tower_source(cls: Any, location: str, what: str, dtype: torch.dtype) -> tuple[Any, set[str]]:
    try:
        with quiet_transformers_loading(), unpartitioned_loading():
            model, info = cls.from_pretrained(location, dtype=dtype, output_loading_info=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot load the {what} weights from {location!r} ({type(exc).__name__}: {exc}); "
            f"pass its folder explicitly, a components_dir, or tower_weights='checkpoint'"
        ) from exc
    return model, set(info.get("missing_keys", ()))


def _copy_weights(target: torch.nn.Module, source: torch.nn.Module, what: str, location: str) -> None:
    from transformers.integrations import is_deepspeed_zero3_enabled

    gathered: contextlib.AbstractContextManager = contextlib.nullcontext()
    if is_deepspeed_zero3_enabled():  # parameters are partitioned: gather, write on rank 0, re-partition
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(list(target.parameters()), modifier_rank=0)
    with gathered:
        result = target.load_state_dict(source.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:
        raise ConfigError(
            f"the {what} at {location} does not fit the checkpoint's tower: missing "
            f"{_fmt_keys(result.missing_keys)}; unexpected {_fmt_keys(result.unexpected_keys)}"
        )


def load_original_towers(model: Any, paths: ComponentPaths) -> None:
    """Replace the tower weights by those in the resolved tower folders (the reference's behaviour)."""
    from transformers import SiglipVisionModel, WhisperForAudioClassification

    inner = model.model
    vision_target = inner.vision_tower.vision_tower.vision_model
    dtype = vision_target.embeddings.patch_embedding.weight.dtype
    source, missing = _load_tower_source(SiglipVisionModel, paths.vision_tower, "vision tower (SigLIP)", dtype)
    if missing:
        raise ConfigError(f"the vision tower at {paths.vision_tower} lacks weights: {_fmt_keys(missing)}")
    _copy_weights(vision_target, source, "vision tower (SigLIP)", paths.vision_tower)
    del source

    encoder_target = inner.audio_tower.audio_tower.encoder
    source, missing = _load_tower_source(
        WhisperForAudioClassification, paths.audio_tower, "audio tower (Whisper)", encoder_target.conv1.weight.dtype
    )
    missing = {k for k in missing if k.startswith("encoder.")}
    if missing:
        raise ConfigError(f"the audio tower at {paths.audio_tower} lacks encoder weights: {_fmt_keys(missing)}")
    _copy_weights(encoder_target, source.encoder, "audio tower (Whisper) encoder", paths.audio_tower)


def _load_bert_fallback(model: Any, paths: ComponentPaths, ckpt: Path) -> None:
    from transformers import BertModel

    logger.warning(
        "%s has no model.bert_model.* weights; using the BERT weights of %s (what the reference "
        "builds its gate's text encoder from)",
        ckpt,
        paths.bert,
    )
    target = model.model.bert_model
    source, missing = _load_tower_source(
        BertModel, paths.bert, "BERT text encoder", target.embeddings.word_embeddings.weight.dtype
    )
    if missing - {k for k in missing if k.startswith("pooler.")}:
        raise ConfigError(f"the BERT folder {paths.bert} lacks weights: {_fmt_keys(missing)}")
    _copy_weights(target, source, "BERT text encoder", paths.bert)


def _blame_components(keys: set[str], paths: ComponentPaths) -> str:
    """A hint naming the tower/BERT folders whose configs shaped the modules these keys belong to."""
    sources = {VISION_PREFIX: paths.vision_tower, AUDIO_PREFIX: paths.audio_tower, BERT_PREFIX: paths.bert}
    blamed = sorted({loc for prefix, loc in sources.items() for k in keys if k.startswith(prefix)})
    if not blamed:
        return ""
    return f" (module configs read from {', '.join(blamed)}: is that what the checkpoint was trained with?)"


def _check_loading(info: dict[str, Any], ckpt: Path, tower_weights: str, paths: ComponentPaths) -> bool:
    """Raise on keys that do not fit (module doc, step 5); return whether BERT must come from its folder."""
    unexpected = set(info.get("unexpected_keys", ()))
    if unexpected:
        raise ConfigError(
            f"{ckpt} holds weights this model has no place for{_blame_components(unexpected, paths)}: "
            f"{_fmt_keys(unexpected)}"
        )
    mismatched = info.get("mismatched_keys") or ()
    if mismatched:
        shown = "; ".join(f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in sorted(mismatched)[:8])
        hint = _blame_components({k for k, _, _ in mismatched}, paths)
        raise ConfigError(f"{ckpt} has weights of the wrong shape for its config{hint}: {shown}")
    missing = set(info.get("missing_keys", ()))
    missing = {k for k in missing if not k.startswith(AUDIO_HEAD_PREFIXES)}
    if tower_weights == "original":
        missing = {k for k in missing if not k.startswith((VISION_PREFIX, AUDIO_PREFIX))}
    bert_missing = {k for k in missing if k.startswith(BERT_PREFIX)}
    missing -= bert_missing
    if missing:
        hint = (
            " (use tower_weights='original' to read the towers from their folders)"
            if any(k.startswith((VISION_PREFIX, AUDIO_PREFIX)) for k in missing)
            else ""
        )
        raise ConfigError(f"{ckpt} lacks weights the model needs: {_fmt_keys(missing)}{hint}")
    return bool(bert_missing)


# --------------------------------------------------------------------------------- entry point
def load_checkpoint(
    model_cls: Any,
    path: str | os.PathLike[str],
    *,
    vision_tower: str | None = None,
    audio_tower: str | None = None,
    bert: str | None = None,
    components_dir: str | os.PathLike[str] | None = None,
    torch_dtype: torch.dtype | str | None = None,
    tower_weights: str | None = None,
    device_map: Any = None,
    attn_implementation: str | None = "sdpa",
    config: HumanOmniQwen2Config | None = None,
    **hf_kwargs: Any,
):
    """A `model_cls` (HumanOmniQwen2ForCausalLM) loaded from `path`; see the module doc for what is
    resolved and checked.

    `torch_dtype` None means bfloat16; "auto" keeps the checkpoint's dtype. Extra keyword
    arguments that name config fields override them (e.g. `use_cache=False`); the others go to
    transformers' `from_pretrained` (e.g. `revision`, `max_memory`).
    """
    if "dtype" in hf_kwargs:  # transformers >= 4.56 spelling
        dtype_arg = hf_kwargs.pop("dtype")
        torch_dtype = torch_dtype if torch_dtype is not None else dtype_arg
    hf_kwargs.pop("output_loading_info", None)
    for name in ("trust_remote_code", "_from_auto", "low_cpu_mem_usage"):
        hf_kwargs.pop(name, None)
    dtype = resolve_dtype(torch_dtype)
    attn = resolve_attn_implementation(attn_implementation, device_map)
    ckpt, config, paths, tower_weights = prepare_config(
        path,
        config=config,
        vision_tower=vision_tower,
        audio_tower=audio_tower,
        bert=bert,
        components_dir=components_dir,
        tower_weights=tower_weights,
    )
    for name in [k for k in hf_kwargs if hasattr(config, k)]:  # config overrides, e.g. use_cache=False
        setattr(config, name, hf_kwargs.pop(name))
    hf_kwargs.setdefault("ignore_mismatched_sizes", True)  # so that _check_loading can name them
    try:
        with quiet_transformers_loading():
            model, info = model_cls._from_pretrained_checkpoint(
                str(ckpt),
                config=config,
                dtype=dtype,
                device_map=device_map,
                attn_implementation=attn,
                output_loading_info=True,
                **hf_kwargs,
            )
    except ConfigError:
        raise
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"cannot load the weights of {ckpt}: {exc}") from exc
    needs_bert = _check_loading(info, ckpt, tower_weights, paths)
    if needs_bert:
        _load_bert_fallback(model, paths, ckpt)
    if tower_weights == "original":
        load_original_towers(model, paths)
    model.model.vision_tower.requires_grad_(False)
    model.model.audio_tower.requires_grad_(False)
    model.eval()
    return model
