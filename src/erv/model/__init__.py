"""HumanOmni (Qwen2 + SigLIP + Whisper + BERT gate): model, processor, loading.

Importing this package registers `HumanOmni_qwen2` with `AutoConfig` / `AutoModelForCausalLM`,
so `AutoModelForCausalLM.from_pretrained(checkpoint_dir)` works without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from erv.model.configuration import MODEL_TYPE, HumanOmniQwen2Config, preset_config
from erv.model.loading import load_model, load_pretrained
from erv.model.processor import HumanOmniProcessor
from erv.model.modeling import (HumanOmniCausalLMOutput, HumanOmniQwen2ForCausalLM, HumanOmniQwen2Model,
                                build_model)
from erv.model.splicing import (AUDIO_PLACEHOLDER, IGNORE_INDEX, IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER,
                                ModelInputError)

AutoConfig.register(MODEL_TYPE, HumanOmniQwen2Config, exist_ok=True)
AutoModelForCausalLM.register(HumanOmniQwen2Config, HumanOmniQwen2ForCausalLM, exist_ok=True)

__all__ = [
    "AUDIO_PLACEHOLDER", "IGNORE_INDEX", "IMAGE_PLACEHOLDER", "VIDEO_PLACEHOLDER",
    "HumanOmniCausalLMOutput", "HumanOmniProcessor", "HumanOmniQwen2Config", "HumanOmniQwen2ForCausalLM", "HumanOmniQwen2Model",
    "ModelInputError", "build_model", "load_model", "load_pretrained", "preset_config",
]
