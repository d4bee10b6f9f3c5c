"""`HumanOmniGRPOTrainer`: TRL's `GRPOTrainer` for HumanOmni's video+audio prompts.

Everything GRPO is inherited from TRL (loss types, clipping, `num_iterations` with old
log-probs, KL with `beta`, reward weights and scaling, async rewards, completion logging, PEFT,
DeepSpeed, resume). What a HumanOmni prompt needs is overridden, and only that:

* the prompt rows (`prompt`, `solution`, `dataset`, ...) come from a DataLoader whose workers
  decode each distinct clip once per round (:mod:`erv.train.grpo_data`);
* `_generate_and_score_completions` first builds the round (:mod:`erv.train.rounds`): each
  distinct prompt's ids (with the -201/-202 placeholders), BERT question and tower outputs,
  computed once; the rows TRL passes on carry an index into it (`mm_index`);
* `_tokenize_prompts` returns those ids (TRL's chat-template path cannot place placeholders);
* `_generate_single_turn` prefills each distinct prompt once and expands its KV cache to the
  prompt's completions (:func:`erv.train.rollout.generate_shared_prefix`), returning only new
  tokens cut after the first EOS;
* `_get_per_token_logps_and_entropies` runs the model with the round's multimodal inputs and
  TRL's fused log-prob head (the backbone splices the media, so the head sees the expanded
  sequence), for the policy, old-policy and reference passes alike;
* the reference model (`beta != 0`) is built by the caller from the same checkpoint and
  prepared here (TRL would build it from the config's name, which cannot load the towers).

`tests/train/test_grpo_trl_contract.py` pins the signatures of the TRL methods overridden here,
so a TRL upgrade that changes them fails loudly instead of silently bypassing an override.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import is_peft_model
from torch.utils.data import DataLoader
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.trainer_utils import seed_worker
from trl import GRPOConfig, GRPOTrainer
from trl.models import prepare_deepspeed, unwrap_model_for_generation
from trl.trainer.callbacks import SyncRefModelCallback
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model, split_tensor_dict

from erv.errors import ConfigError
from erv.train.args import split_report_to
from erv.train.grpo_data import INDEX_KEY, MEDIA_KEY, RolloutCollator, RolloutDataset, RoundSampler, load_rollout_media
from erv.train.parts import TOWER_PARTS, frozen_parts
from erv.train.rollout import SamplingSettings, generate_shared_prefix
from erv.train.rounds import PromptRound, encode_media, extra_positions, group_rows
from erv.train.shared_prefix import chunked, pack_groups

logger = logging.getLogger(__name__)

ROUND_INDEX_KEY = "mm_index"
"""Key of the per-row index into the round's distinct prompts in TRL's batch dict."""


@dataclass
class HumanOmniGRPOConfig(GRPOConfig):
    """`GRPOConfig` plus how HumanOmni prompts are built and reused."""

    prompt_style: str = field(
        default="grpo",
        metadata={
            "help": "prompt layout: 'grpo' (the reference GRPO trainer's, with Qwen2-VL video tokens) or "
            "'inference' (mm_infer's)"
        },
    )
    reuse_tower_features: bool = field(
        default=True,
        metadata={
            "help": "run the frozen vision/audio towers once per distinct prompt per round and reuse the "
            "features in generation and in every log-prob pass (a tower that trains is never reused)"
        },
    )
    shared_prefix_generation: bool = field(
        default=True,
        metadata={
            "help": "prefill each distinct prompt once and expand its KV cache to its completions; False "
            "prefills every completion row (the reference pattern)"
        },
    )
    shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "log-prob passes (policy, old policy, reference) run each prompt once for all of its "
            "completions in a micro-batch (one packed row per group with a block mask); False runs "
            "one row per completion, as TRL does"
        },
    )
    shared_prefix_max_completions: int | None = field(
        default=None,
        metadata={
            "help": "cut a group into packed rows of at most this many completions (memory); None: whole groups"
        },
    )

    def __post_init__(self) -> None:
        split_report_to(self)
        super().__post_init__()
        if self.prompt_style not in ("grpo", "inference"):
            raise ConfigError(f"prompt_style must be 'grpo' or 'inference', got {self.prompt_style!r}")
        if self.shared_prefix_max_completions is not None and self.shared_prefix_max_completions < 1:
            raise ConfigError(
                f"shared_prefix_max_completions must be at least 1, got {self.shared_prefix_max_completions}"
            )


def humanomni_of(model: Any) -> Any:
    """The HumanOmni model inside DDP / DeepSpeed / PEFT wrappers."""
    while hasattr(model, "module"):
        model = model.module
    if is_peft_model(model):
        model = model.get_base_model()
    return model


class HumanOmniGRPOTrainer(GRPOTrainer):
    """GRPO on HumanOmni (module doc). `processor` is the model's `HumanOmniProcessor`."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        reward_funcs: Any,
        args: HumanOmniGRPOConfig,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        *,
        ref_model: Any = None,
        callbacks: Any = None,
        optimizers: Any = (None, None),
        peft_config: Any = None,
    ) -> None:
        if not isinstance(args, HumanOmniGRPOConfig):
            raise ConfigError("HumanOmniGRPOTrainer needs a HumanOmniGRPOConfig")
        uses_peft = peft_config is not None or is_peft_model(model)
        if args.beta != 0.0 and not uses_peft and ref_model is None:
            raise ConfigError(
                "beta != 0 needs a reference model: pass ref_model (a second copy of the starting "
                "checkpoint, as `erv grpo` builds it)"
            )
        self.processor = processor
        # a tower that trains changes its output every step: its features are never reused
        self.trainable_towers = tuple(part for part in TOWER_PARTS if part not in frozen_parts(model))
        self._round: PromptRound | None = None
        self._rows_index: torch.Tensor | None = None
        self.tower_calls = 0
        beta, sync_ref = args.beta, args.sync_ref_model
        # TRL builds its reference model from the policy config's name, which cannot load HumanOmni's
        # towers; it is built from the checkpoint by the caller and prepared below instead.
        args.beta, args.sync_ref_model = 0.0, False
        try:
            super().__init__(
                model=model,
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processor.tokenizer,
                callbacks=callbacks,
                optimizers=optimizers,
                peft_config=peft_config,
            )
        finally:
            args.beta, args.sync_ref_model = beta, sync_ref
        self.beta = beta
        if beta != 0.0 and not uses_peft:
            self.ref_model = self._prepare_reference(ref_model)
            if sync_ref:
                self.add_callback(SyncRefModelCallback(ref_model=self.ref_model, accelerator=self.accelerator))

    def _prepare_reference(self, ref_model: Any) -> Any:
        ref_model.requires_grad_(False)
        ref_model.eval()
        if self.args.disable_dropout:
            disable_dropout_in_model(ref_model)
        add_fused_lm_head(ref_model, temperature=self.temperature, cast_lm_head_to_fp32=self.args.cast_lm_head_to_fp32)
        if self.is_deepspeed_enabled:
            return prepare_deepspeed(ref_model, self.accelerator)
        return self.accelerator.prepare_model(ref_model, evaluation_mode=True)

    # ---------------------------------------------------------------- data
    def _rollout_loader(self, dataset: Any, sampler: Any, batch_size: int) -> DataLoader:
        args = self.args
        workers = args.dataloader_num_workers
        loader = DataLoader(
            RolloutDataset(dataset),
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=RolloutCollator(self.processor),
            num_workers=workers,
            pin_memory=args.dataloader_pin_memory,
            persistent_workers=args.dataloader_persistent_workers if workers else False,
            prefetch_factor=args.dataloader_prefetch_factor if workers else None,
            worker_init_fn=(lambda worker: seed_worker(worker, workers, args.process_index)) if workers else None,
        )
        return self.accelerator.prepare(loader)

    def get_train_dataloader(self) -> DataLoader:
        args = self.args
        sampler = RoundSampler(
            data_source=self.train_dataset,
            mini_repeat_count=self.num_generations,
            batch_size=args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * args.steps_per_generation,
            shuffle=self.shuffle_dataset,
            seed=args.seed,
        )
        return self._rollout_loader(self.train_dataset, sampler, self._train_batch_size * args.steps_per_generation)

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if isinstance(dataset, str):
            dataset = self.eval_dataset[dataset]
        sampler = RoundSampler(data_source=dataset, mini_repeat_count=self.num_generations_eval, seed=self.args.seed)
        return self._rollout_loader(dataset, sampler, self.args.per_device_eval_batch_size)

    # ---------------------------------------------------------------- the round
    def _build_round(self, rows: list[dict[str, Any]], media: list[Any]) -> PromptRound:
        first, row_prompt = group_rows([row[INDEX_KEY] for row in rows])
        samples: list[Any] = [None] * len(first)
        for distinct, sample in zip(row_prompt.tolist(), media, strict=True):
            if sample is not None and samples[distinct] is None:
                samples[distinct] = sample
        for distinct, row in enumerate(first):
            if samples[distinct] is None:  # a round regenerated from a replayed batch (e.g. after resuming)
                samples[distinct] = load_rollout_media(self.processor, rows[row])
        encoded = [self.processor.encode_prompt(rows[r]["prompt"], style=self.args.prompt_style) for r in first]
        model = humanomni_of(self.model)
        device = self.accelerator.device
        inputs = {k: v.to(device) for k, v in self.processor.encode_questions([e.question for e in encoded]).items()}
        reuse = self.args.reuse_tower_features
        inputs.update(
            encode_media(
                model,
                samples,
                device=device,
                reuse_vision=reuse and "vision_tower" not in self.trainable_towers,
                reuse_audio=reuse and "audio_tower" not in self.trainable_towers,
            )
        )
        self.tower_calls += 1
        prompt_ids = [e.input_ids for e in encoded]
        frames = samples[0].pixel_values.shape[0]
        return PromptRound(row_prompt.to(device), prompt_ids, inputs, extra_positions(model, prompt_ids, frames))

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [dict(row) for row in inputs]
        media = [row.pop(MEDIA_KEY, None) for row in rows]
        self._round = self._build_round(rows, media)
        for row in rows:
            row.pop(INDEX_KEY, None)
        self._rows_index = torch.arange(len(rows), device=self.accelerator.device)
        output = super()._generate_and_score_completions(rows)
        output[ROUND_INDEX_KEY] = self._rows_index
        return output

    def _tokenize_prompts(self, prompts: list) -> tuple[list[list[int]], None, dict]:
        assert self._round is not None
        return [self._round.prompt_ids[i] for i in self._round.row_prompt.tolist()], None, {}

    def _sampling_settings(self) -> SamplingSettings:
        extra = dict(self.args.generation_kwargs or {})
        return SamplingSettings(
            max_new_tokens=int(self.max_completion_length),
            eos_token_ids=tuple(self.eos_token_ids),
            pad_token_id=int(self._tokenizer.pad_token_id),
            do_sample=bool(extra.get("do_sample", True)),
            temperature=float(extra.get("temperature", self.temperature)),
            top_p=float(extra.get("top_p", self.top_p if self.top_p is not None else 1.0)),
            top_k=extra.get("top_k", self.top_k),
            min_p=extra.get("min_p", self.min_p),
            repetition_penalty=float(extra.get("repetition_penalty", self.repetition_penalty or 1.0)),
        )

    def _generate_single_turn(
        self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: Any, has_tool_images: bool = False
    ) -> tuple[list[list[int]], None]:
        assert self._round is not None
        rnd = self._round
        device = self.accelerator.device
        ids, mask = self.processor.pad_sequences(rnd.prompt_ids, padding_side="left")
        ids, mask, row_prompt, inputs = ids.to(device), mask.to(device), rnd.row_prompt, rnd.inputs
        if not self.args.shared_prefix_generation:  # every completion row prefills its own copy
            ids, mask, inputs = ids[row_prompt], mask[row_prompt], rnd.prompt_inputs(row_prompt)
            row_prompt = torch.arange(len(row_prompt), device=device)
        synced = is_deepspeed_zero3_enabled() and self.accelerator.num_processes > 1
        with (
            unwrap_model_for_generation(
                self.model_wrapped,
                self.accelerator,
                gather_deepspeed3_params=self.args.ds3_gather_for_generation,
                gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs,
            ) as unwrapped,
            torch.no_grad(),
        ):
            completions = generate_shared_prefix(
                unwrapped, ids, mask, row_prompt, self._sampling_settings(), prompt_inputs=inputs, synced=synced
            )
        return completions, None

    def _prepare_inputs(self, generation_batch: Any) -> dict[str, Any]:
        """TRL's buffering, with the rows of a group kept together when they are shuffled.

        TRL shuffles a generation batch row by row before cutting it into micro-batches, which
        scatters each group over every micro-batch and leaves nothing to share. With
        `shared_prefix` the groups are shuffled instead, from the same `torch.randperm` draw
        (so the random stream, hence every later sample, is the one TRL would use).
        """
        if not (self.model.training and self.args.shared_prefix):
            return super()._prepare_inputs(generation_batch)
        generate_every = self.args.steps_per_generation * self.num_iterations
        if self._step % generate_every == 0 or self._buffered_inputs is None:
            batch = self._generate_and_score_completions(generation_batch)
            batch = permute_rows(batch, self._group_order(batch[ROUND_INDEX_KEY]))
            self._buffered_inputs = split_tensor_dict(batch, self.args.steps_per_generation)
        return self._buffered_inputs[self._step % self.args.steps_per_generation]

    def _group_order(self, rows: torch.Tensor) -> torch.Tensor:
        assert self._round is not None
        rank = torch.empty(rows.numel(), dtype=torch.long)
        rank[torch.randperm(rows.numel())] = torch.arange(rows.numel())
        group = self._round.row_prompt[rows].cpu()
        first = torch.full((int(group.max()) + 1,), rows.numel(), dtype=torch.long)
        first = first.scatter_reduce(0, group, rank, reduce="amin")
        key = first[group] * rows.numel() + rank  # groups in the order of their first drawn row
        return torch.argsort(key)

    # ---------------------------------------------------------------- log-probs
    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        self._rows_index = inputs[ROUND_INDEX_KEY]
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **unused: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        """Log-probs (and entropies) of the last `logits_to_keep` tokens of each row.

        Rows are prompt (left-padded, with placeholders) + completion (right-padded); the
        backbone splices the media, which makes every row `extra_positions` longer, and the
        completion stays at the end. The fused head scores only the completion tokens.
        """
        assert self._round is not None and self._rows_index is not None
        rows = self._rows_index
        if rows.numel() != input_ids.shape[0]:
            raise RuntimeError(f"{input_ids.shape[0]} rows to score but {rows.numel()} round indices")
        batch_size = batch_size or input_ids.shape[0]
        if self.args.shared_prefix and self._block_masks_supported(model):
            return self._shared_prefix_logps(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy
            )
        logps, entropies = [], []
        extra = self._round.extra_positions
        for start in range(0, input_ids.shape[0], batch_size):
            ids = input_ids[start : start + batch_size]
            mask = attention_mask[start : start + batch_size]
            labels = ids.masked_fill(mask == 0, -100)
            labels[:, :-logits_to_keep] = -100
            shift_labels = F.pad(labels[:, 1:], (extra, 1), value=-100)  # expanded positions, next-token labels
            media = self._round.row_inputs(rows[start : start + batch_size])
            with self.accelerator.autocast():
                out = model(input_ids=ids, attention_mask=mask, shift_labels=shift_labels, fused_lm_head=True, **media)
            end = shift_labels.shape[1] - 1
            logps.append(out.log_probs[:, end - logits_to_keep : end])
            if compute_entropy:
                entropies.append(out.entropy[:, end - logits_to_keep : end])
        return torch.cat(logps), (torch.cat(entropies) if compute_entropy else None), None

    def _shared_prefix_logps(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int,
        compute_entropy: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        """The same log-probs as the plain path, one packed row per group (erv.train.shared_prefix)."""
        assert self._round is not None and self._rows_index is not None
        rnd, rows = self._round, self._rows_index
        start_of_completion = input_ids.shape[1] - logits_to_keep
        lengths = attention_mask[:, start_of_completion:].sum(dim=1).tolist()
        groups = rnd.row_prompt[rows.to(rnd.row_prompt.device)].tolist()
        float_mask = None if humanomni_of(model).config._attn_implementation == "sdpa" else self._compute_dtype()
        per_row_logps: list[torch.Tensor | None] = [None] * input_ids.shape[0]
        per_row_entropy: list[torch.Tensor | None] = [None] * input_ids.shape[0]
        for start in range(0, input_ids.shape[0], batch_size):
            members: dict[int, list[int]] = {}
            for row in range(start, min(start + batch_size, input_ids.shape[0])):
                members.setdefault(groups[row], []).append(row)
            units = [
                (prompt, chunk)
                for prompt, rows_of in members.items()
                for chunk in chunked(rows_of, self.args.shared_prefix_max_completions)
            ]
            packed = pack_groups(
                [rnd.prompt_ids[prompt] for prompt, _ in units],
                [
                    [input_ids[r, start_of_completion : start_of_completion + lengths[r]].tolist() for r in chunk]
                    for _, chunk in units
                ],
                extra_positions=rnd.extra_positions,
                pad_token_id=int(self._tokenizer.pad_token_id),
                float_mask_dtype=float_mask,
                device=input_ids.device,
            )
            prompt_index = torch.tensor([prompt for prompt, _ in units], device=input_ids.device)
            media = rnd.prompt_inputs(prompt_index)
            with self.accelerator.autocast():
                out = model(
                    input_ids=packed.input_ids,
                    attention_mask=packed.attention_mask,
                    position_ids=packed.position_ids,
                    shift_labels=packed.shift_labels,
                    fused_lm_head=True,
                    **media,
                )
            for unit, (_, chunk) in enumerate(units):
                for r, (first, n) in zip(chunk, packed.segments[unit], strict=True):
                    per_row_logps[r] = out.log_probs[unit, first : first + n]
                    if compute_entropy:
                        per_row_entropy[r] = out.entropy[unit, first : first + n]

        def stack(values: list[torch.Tensor | None]) -> torch.Tensor:
            return torch.stack([F.pad(v, (0, logits_to_keep - v.shape[0])) for v in values])  # type: ignore[union-attr]

        return stack(per_row_logps), (stack(per_row_entropy) if compute_entropy else None), None

    def _block_masks_supported(self, model: Any) -> bool:
        """SDPA and eager attention take the packed block mask; flash-attention's kernels cannot
        express a prefix shared by several completions in one pass, so there the plain layout runs."""
        implementation = humanomni_of(model).config._attn_implementation
        if implementation in ("sdpa", "eager"):
            return True
        if not getattr(self, "_warned_block_masks", False):
            logger.warning(
                "shared_prefix needs sdpa or eager attention, the model uses %s: log-probs run one row per completion",
                implementation,
            )
            self._warned_block_masks = True
        return False

    def _compute_dtype(self) -> torch.dtype:
        if self.args.bf16:
            return torch.bfloat16
        if self.args.fp16:
            return torch.float16
        return next(humanomni_of(self.model).parameters()).dtype


def permute_rows(batch: dict[str, Any], order: torch.Tensor) -> dict[str, Any]:
    """`batch` with every per-row value (tensor or list) taken in `order`; scalars unchanged."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.ndim >= 1:
            out[key] = value[order.to(value.device)]
        elif isinstance(value, list):
            out[key] = [value[i] for i in order.tolist()]
        else:
            out[key] = value
    return out
