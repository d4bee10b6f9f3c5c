"""HumanOmni (Qwen2 + SigLIP + Whisper + BERT gate): model, processor, loading, datasets.

Modules, each with one job (imports run down this list, never up):
  loading        `load_model`, `load_pretrained`: the entry points
  dataset        torch Dataset + collator over record files (media decoded in DataLoader workers)
  processor      prompts in every reference style, BERT questions, batching, decoding
  modeling       the model: towers -> projectors -> BERT gate -> splice -> Qwen2
  checkpoint     reading checkpoint folders: config completion, component paths, key checks
  generation     the sampling warpers of `generate`, for erv's own decoding loops
  projectors, towers, splicing, paths, configuration, constants

Importing this package registers `HumanOmni_qwen2` with `AutoConfig` / `AutoModelForCausalLM`,
so `AutoModelForCausalLM.from_pretrained(checkpoint_dir)` works without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from erv.errors import ModelInputError
from erv.model.configuration import MODEL_TYPE, HumanOmniQwen2Config, preset_config
from erv.model.constants import AUDIO_PLACEHOLDER, IGNORE_INDEX, IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER
from erv.model.dataset import HumanOmniCollator, HumanOmniDataset, make_dataloader
from erv.model.loading import load_model, load_pretrained
from erv.model.modeling import HumanOmniCausalLMOutput, HumanOmniQwen2ForCausalLM, HumanOmniQwen2Model, build_model
from erv.model.processor import HumanOmniProcessor

AutoConfig.register(MODEL_TYPE, HumanOmniQwen2Config, exist_ok=True)
AutoModelForCausalLM.register(HumanOmniQwen2Config, HumanOmniQwen2ForCausalLM, exist_ok=True)

__all__ = [
    "AUDIO_PLACEHOLDER",
    "IGNORE_INDEX",
    "IMAGE_PLACEHOLDER",
    "VIDEO_PLACEHOLDER",
    "HumanOmniCausalLMOutput",
    "HumanOmniCollator",
    "HumanOmniDataset",
    "HumanOmniProcessor",
    "HumanOmniQwen2Config",
    "HumanOmniQwen2ForCausalLM",
    "HumanOmniQwen2Model",
    "ModelInputError",
    "build_model",
    "load_model",
    "make_dataloader",
    "load_pretrained",
    "preset_config",
]
