"""The Emotional Rationale Verifier (ERV): a text classifier that names the emotions a
sentence of an explanation expresses (paper §3).

Modules, each with one job:
  data     text–label examples: read, import (EMER, MERR-fine, judge pseudo-labels), split
  model    `Verifier`: loads a `save_pretrained` classifier, knows its head layout
  predict  the batched scoring engine (dedup, length-sorted micro-batches) and label sets
  train    multi-label fine-tuning with the HF `Trainer` from a YAML recipe
  eval     per-class / micro / macro scores and a threshold sweep
  augment  LLM-judge augmentation: pseudo-labels (Figure 6), rare-class complements (Figure 7)
  cli      `erv verifier data|train|eval|predict|augment`

Importing this package is cheap; torch and transformers load with `model`, `train`, ...
"""

from __future__ import annotations

from typing import Any

__all__ = ["Verifier", "TextExample"]


def __getattr__(name: str) -> Any:  # lazy: `from erv.verifier import Verifier` loads torch only then
    if name == "Verifier":
        from erv.verifier.model import Verifier

        return Verifier
    if name == "TextExample":
        from erv.verifier.data import TextExample

        return TextExample
    raise AttributeError(name)
