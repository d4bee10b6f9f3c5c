"""Prefix-shared rollouts: each prompt prefilled once, the same tokens as generating every row alone."""

from __future__ import annotations

import torch

from erv.data.prompts import TASK_PROMPT
from erv.model import load_pretrained
from erv.train.rollout import SamplingSettings, generate_shared_prefix


def test_prefix_shared_greedy_generation_equals_the_unshared_path(tiny_fixture):
    model, processor = load_pretrained(
        tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype=torch.float32
    )
    frames, wav = str(tiny_fixture / "inputs" / "frames"), str(tiny_fixture / "inputs" / "audio.wav")
    batch = processor([frames, frames], [TASK_PROMPT, "Which emotion? Think, then answer."], audios=[wav, wav])
    inputs = processor.model_inputs(batch)
    ids, mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
    assert int(mask[0].sum()) != int(mask[1].sum())  # two prompt lengths, left-padded
    row_prompt = torch.tensor([0, 1, 0, 1, 1])  # groups interleaved, of different sizes
    settings = SamplingSettings(
        max_new_tokens=12,
        eos_token_ids=(processor.tokenizer.eos_token_id,),
        pad_token_id=processor.pad_token_id,
        do_sample=False,
    )
    prefills = []
    hook = model.model.vision_tower.register_forward_hook(lambda module, args, out: prefills.append(args[0].shape[0]))
    shared = generate_shared_prefix(model, ids, mask, row_prompt, settings, prompt_inputs=inputs)
    hook.remove()
    assert prefills == [2 * processor.media.num_frames]  # the towers saw each prompt once
    for row, prompt in enumerate(row_prompt.tolist()):
        keep = mask[prompt].bool()
        alone = model.generate(
            input_ids=ids[prompt : prompt + 1, keep],
            attention_mask=mask[prompt : prompt + 1, keep],
            **{k: v[prompt : prompt + 1] for k, v in inputs.items()},
            max_new_tokens=12,
            do_sample=False,
        )
        expected = alone[0].tolist()
        eos = processor.tokenizer.eos_token_id
        if eos in expected:
            expected = expected[: expected.index(eos) + 1]
        assert shared[row] == expected, row


def test_sampling_respects_the_stop_tokens_and_the_length(tiny_fixture):
    model, processor = load_pretrained(
        tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype=torch.float32
    )
    frames, wav = str(tiny_fixture / "inputs" / "frames"), str(tiny_fixture / "inputs" / "audio.wav")
    inputs = processor.model_inputs(processor([frames], [TASK_PROMPT], audios=[wav]))
    ids, mask = inputs.pop("input_ids"), inputs.pop("attention_mask")
    torch.manual_seed(0)
    common = dict(max_new_tokens=10, pad_token_id=processor.pad_token_id, do_sample=True, temperature=1.5, top_p=0.9)
    free = generate_shared_prefix(
        model,
        ids,
        mask,
        torch.zeros(6, dtype=torch.long),
        SamplingSettings(eos_token_ids=(-1,), **common),
        prompt_inputs=inputs,
    )
    assert all(len(c) == 10 for c in free) and len({tuple(c) for c in free}) > 1  # sampled, full length
    stop = free[0][3]
    torch.manual_seed(0)
    cut = generate_shared_prefix(
        model,
        ids,
        mask,
        torch.zeros(6, dtype=torch.long),
        SamplingSettings(eos_token_ids=(stop,), **common),
        prompt_inputs=inputs,
    )
    assert cut[0] == free[0][: free[0].index(stop) + 1]  # ends at (and keeps) the first stop token
