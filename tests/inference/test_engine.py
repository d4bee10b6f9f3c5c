"""Batched generation equals one clip at a time; rows stop on their own; sampling is per clip."""

from __future__ import annotations

import copy

import pytest

from erv.errors import ConfigError
from erv.inference.engine import InferenceEngine
from erv.inference.settings import ANSWER_ONLY_PREFIX, InferenceSettings
from erv.model import make_dataloader


def batches(engine, records, batch_size):
    loader = make_dataloader(engine.dataset(records), batch_size=batch_size)
    out = {}
    for batch in loader:
        assert not batch["skipped"]
        for sample_id, samples in zip(batch["ids"], engine.generate(batch), strict=True):
            out[sample_id] = samples
    return out


def tokens(results):
    return {sample_id: [s.token_ids for s in samples] for sample_id, samples in results.items()}


@pytest.fixture(scope="module")
def greedy(loaded):
    model, processor = loaded
    return InferenceEngine(model, processor, InferenceSettings(max_new_tokens=12))


def test_batched_generation_equals_batch_size_one_token_for_token(greedy, good_records):
    records = good_records[:4]
    lengths = [greedy.prompt_length(r) for r in records]
    assert len(set(lengths)) == 3  # the batch mixes prompt lengths (left padding is exercised)
    together = tokens(batches(greedy, records, batch_size=4))
    alone = tokens(batches(greedy, records, batch_size=1))
    assert together == alone
    assert all(len(s[0]) == 12 for s in together.values())


def test_each_row_stops_at_its_own_end_token(loaded, greedy, good_records):
    """An end token (from the checkpoint's generation config) ends each row where that row produces
    it; rows without it run to max_new_tokens, and batched rows still equal their single runs."""
    model, processor = loaded
    records = good_records[:4]
    free = {sid: s[0] for sid, s in tokens(batches(greedy, records, batch_size=4)).items()}
    first = records[0]["id"]
    # a token the first row produces after a few steps and some other row never produces
    stop = next(t for t in free[first][2:] if any(t not in row for row in free.values()))
    saved = copy.deepcopy(model.generation_config)
    model.generation_config.eos_token_id = [processor.tokenizer.eos_token_id, stop]
    try:
        engine = InferenceEngine(model, processor, InferenceSettings(max_new_tokens=12))
        together = batches(engine, records, batch_size=4)
        alone = batches(engine, records, batch_size=1)
    finally:
        model.generation_config = saved
    assert stop in engine.decoding.stop_ids
    assert tokens(together) == tokens(alone)
    reasons = set()
    for sample_id, row in free.items():
        (result,) = together[sample_id]
        if stop in row:
            assert result.token_ids == row[: row.index(stop)] and result.finish_reason == "stop"
        else:
            assert result.token_ids == row and result.finish_reason == "length"
        reasons.add(result.finish_reason)
    assert reasons == {"stop", "length"}


def test_sampling_depends_on_the_clip_and_seed_not_the_batch(loaded, good_records):
    model, processor = loaded
    settings = InferenceSettings(max_new_tokens=10, temperature=5.0, top_p=0.95, num_samples=3, seed=7)
    engine = InferenceEngine(model, processor, settings)
    records = good_records[:4]
    together = tokens(batches(engine, records, batch_size=4))
    assert together == tokens(batches(engine, records, batch_size=1))
    assert all(len(samples) == 3 for samples in together.values())
    assert any(len(set(samples)) > 1 for samples in together.values())  # the K samples differ
    reseeded = InferenceEngine(model, processor, InferenceSettings(**{**settings.__dict__, "seed": 8}))
    assert tokens(batches(reseeded, records, batch_size=2)) != together


def test_checkpoint_generation_config_is_merged_as_transformers_does(loaded):
    model, processor = loaded
    saved = copy.deepcopy(model.generation_config)
    model.generation_config.repetition_penalty = 1.3
    model.generation_config.top_k = 20
    try:
        greedy = InferenceEngine(model, processor, InferenceSettings()).decoding
        sampled = InferenceEngine(model, processor, InferenceSettings(temperature=0.3)).decoding
    finally:
        model.generation_config = saved
    assert greedy.describe()["generation"]["repetition_penalty"] == 1.3  # active in greedy decoding too
    assert greedy.sampler is None and greedy.generation.do_sample is False
    assert sampled.sampler["temperature"] == 0.3 and sampled.sampler["top_p"] == 0.9  # the flags
    assert sampled.sampler["top_k"] == 20  # the checkpoint's, not overridden
    plain = InferenceEngine(model, processor, InferenceSettings(temperature=0.3)).decoding
    assert plain.sampler["top_k"] == 50  # transformers' global default applies when nothing sets it


def test_answer_only_prompt_ends_with_an_empty_think(loaded, good_records):
    model, processor = loaded
    engine = InferenceEngine(model, processor, InferenceSettings(max_new_tokens=4, answer_only=True))
    item = engine.dataset(good_records[:1])[0]
    prefix_ids = processor.tokenizer(ANSWER_ONLY_PREFIX, add_special_tokens=False)["input_ids"]
    assert item["input_ids"][-len(prefix_ids) :] == prefix_ids
    plain = InferenceEngine(model, processor, InferenceSettings(max_new_tokens=4))
    assert engine.prompt_length(good_records[0]) == plain.prompt_length(good_records[0]) + len(prefix_ids)
    (samples,) = batches(engine, good_records[:1], batch_size=1).values()
    assert samples[0].text.startswith(ANSWER_ONLY_PREFIX)


def test_several_greedy_samples_are_refused():
    with pytest.raises(ConfigError, match="identical"):
        InferenceSettings(num_samples=4)
