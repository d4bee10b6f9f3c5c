"""Benchmark: the ERV explanation reward on one GRPO step's completions, on CPU.

Workload: 16 prompts × 16 generations = 256 completions, 4–8 sentences of 10–40
words each, about half of each prompt's sentences repeated across its generations (what low
temperature produces). Verifier: a RoBERTa-base-sized classifier (12 layers, hidden 768,
28-label GoEmotions head), randomly initialised, with a byte-level BPE tokenizer trained here
on the synthetic text (no download).

Three timings, measured in the same run and interleaved per repetition:

  paper     the released code's approach: split every completion, tokenise all sentences
            into ONE batch padded to the longest, one forward, sigmoid;
  ours      `ExplanationReward.__call__` end to end (splitting, dedup, tokenising,
            length-sorted micro-batches, Algorithm 1, statistics), cache off;
  forward   the verifier forward alone over the unique sentences, pre-tokenised and
            pre-batched exactly as `ours` batches them: the floor for any implementation.

Targets: paper / ours >= 2.5 and ours / forward <= 1.25. Both rewards are checked to agree.

    python bench/bench_rewards.py [--repeats 3] [--threads 1] [--quick]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from erv.data.emotions import GOEMOTIONS_LABELS, MAFW  # noqa: E402
from erv.rewards import ExplanationReward, explanation_scores  # noqa: E402
from erv.verifier.model import Verifier  # noqa: E402
from erv.verifier.predict import forward_probabilities, plan_batches, select_label_sets  # noqa: E402

WORDS = """the a his her their man woman person speaker face eyes brow mouth lips voice tone hands shoulders
head posture gaze expression smile frown tears look looks appears seems sounds speaks says while when as
and but with without slightly deeply visibly clearly suddenly slowly quietly loudly tense relaxed tight
soft trembling raised lowered furrowed wide narrow bright dark heavy calm steady shaking nervous angry sad
happy surprised afraid disgusted bored tired warm cold sharp gentle harsh rapid low high pitch breathing
sigh laugh cry shout whisper glance stare nod shake turn lean step away toward camera scene room light
background music words sentence conversation question answer reply moment pause silence beginning end
suggests indicates shows reveals reflects conveys implies hints expresses displays betrays masks hides
frustration joy sorrow anger fear disgust surprise anxiety helplessness disappointment contempt neutrality
emotion feeling mood state reaction response context situation audio visual cue cues overall combined
likely probably perhaps certainly mostly partly strongly weakly briefly repeatedly constantly""".split()


def make_sentence(rng: random.Random) -> str:
    n = rng.randint(10, 40)
    words = [rng.choice(WORDS) for _ in range(n)]
    words[0] = words[0].capitalize()
    if n > 14 and rng.random() < 0.5:
        words[rng.randint(4, n - 6)] += ","
    return " ".join(words) + rng.choice([".", ".", ".", "!"])


def make_step(prompts: int, generations: int, rng: random.Random) -> tuple[list[str], list[str]]:
    completions, golds = [], []
    for _ in range(prompts):
        pool = [make_sentence(rng) for _ in range(8)]  # this prompt's recurring sentences
        gold = rng.choice(MAFW.labels)
        for _ in range(generations):
            sentences = [
                rng.choice(pool) if rng.random() < 0.5 else make_sentence(rng) for _ in range(rng.randint(4, 8))
            ]
            completions.append(f"<think>{' '.join(sentences)}</think>\n<answer>{gold}</answer>")
            golds.append(gold)
    return completions, golds


def build_tokenizer(texts: list[str], vocab_size: int = 720):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # the vocabulary size is chosen so that a word becomes ~1.4 pieces, as RoBERTa's BPE does on English
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=512,
    )


def build_model(quick: bool, pad_id: int):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    size = (
        dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
        if quick
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    )
    config = RobertaConfig(
        vocab_size=50265,
        max_position_embeddings=514,
        type_vocab_size=1,
        pad_token_id=pad_id,
        num_labels=28,
        id2label=dict(enumerate(GOEMOTIONS_LABELS)),
        label2id={lab: i for i, lab in enumerate(GOEMOTIONS_LABELS)},
        problem_type="multi_label_classification",
        **size,
    )
    torch.manual_seed(0)
    return RobertaForSequenceClassification(config).eval()


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
_SPLIT = re.compile(r'(?<=[\.!?])\s+(?=(?:[^"]*"[^"]*")*[^"]*$)')


def paper_approach(model, tokenizer, completions: list[str]) -> tuple[torch.Tensor, list[int]]:
    """Split, one padded batch over all sentences, one forward (the released reward's shape)."""
    sentences, counts = [], []
    for completion in completions:
        match = _THINK.search(completion)
        pieces = [s for s in _SPLIT.split(match.group(1).strip() if match else "") if s]
        sentences.extend(pieces)
        counts.append(len(pieces))
    inputs = tokenizer(sentences, return_tensors="pt", padding=True, truncation=True)
    with torch.no_grad():
        probs = torch.sigmoid(model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits)
    return probs, counts


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1, help="timed repetitions of each method (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the cores are shared)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-batch-tokens", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a 4-layer, 256-wide model for a fast sanity run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = random.Random(args.seed)
    completions, golds = make_step(args.prompts, args.generations, rng)
    tokenizer = build_tokenizer([make_sentence(random.Random(i)) for i in range(3000)])
    model = build_model(args.quick, tokenizer.pad_token_id)
    verifier = Verifier(
        model,
        tokenizer,
        taxonomy="MAFW",
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        device="cpu",
    )
    reward = ExplanationReward(verifier)

    # the work itself, for the report
    flat = [s for c in completions for s in reward.sentences(c)]
    unique = list(dict.fromkeys(flat))
    encoded = tokenizer(
        unique, truncation=True, max_length=verifier.max_length, padding=False, return_attention_mask=False
    )["input_ids"]
    lengths = [len(ids) for ids in encoded]
    batches = plan_batches(lengths, args.batch_size, args.max_batch_tokens)
    all_lengths = [len(ids) for ids in tokenizer(flat, padding=False, return_attention_mask=False)["input_ids"]]
    padded_all = len(flat) * max(all_lengths)
    padded_ours = sum(len(b) * lengths[b[0]] for b in batches)
    words = [len(s.split()) for s in flat]
    print(
        f"workload: {len(completions)} completions, {len(flat)} sentences ({len(unique)} unique), "
        f"{min(words)}-{max(words)} words / {min(all_lengths)}-{max(all_lengths)} tokens per sentence "
        f"({(sum(all_lengths) - 2 * len(flat)) / sum(words):.2f} tokens per word)"
    )
    print(
        f"tokens computed: paper {padded_all} (one batch padded to {max(all_lengths)}), "
        f"ours {padded_ours} in {len(batches)} micro-batches ({sum(lengths)} real)"
    )
    print(
        f"model: {'quick 4x256' if args.quick else 'RoBERTa-base size (12x768)'}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters, torch threads {args.threads}"
    )

    # correctness: both paths give the same rewards
    paper_probs, counts = paper_approach(model, tokenizer, completions)
    columns = verifier.columns("MAFW")
    paper_rewards, _ = explanation_scores(
        select_label_sets(paper_probs, 0.1, 2, True), counts, [columns[g] for g in golds], verifier.neutral_index
    )
    ours_rewards = reward(completions, golds)
    mismatches = sum(abs(a - b) > 1e-9 for a, b in zip(paper_rewards, ours_rewards, strict=True))
    print(
        f"rewards agree on {len(golds) - mismatches}/{len(golds)} completions "
        f"(differences only from float rounding at the threshold)"
    )

    pad_id = tokenizer.pad_token_id
    times: dict[str, list[float]] = {"paper": [], "ours": [], "forward": []}
    for rep in range(args.repeats):
        dt, _ = timed(lambda: paper_approach(model, tokenizer, completions))
        times["paper"].append(dt)
        dt, _ = timed(lambda: reward(completions, golds))
        times["ours"].append(dt)
        dt, _ = timed(lambda: forward_probabilities(model, encoded, batches, pad_id, torch.device("cpu"), 28))
        times["forward"].append(dt)
        print(
            f"repetition {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    speedup = med["paper"] / med["ours"]
    overhead = med["ours"] / med["forward"]
    print(
        f"median of {args.repeats}: paper {med['paper']:.2f}s, ours {med['ours']:.2f}s, "
        f"forward-only {med['forward']:.2f}s"
    )
    print(f"speed-up vs one padded batch: {speedup:.2f}x (target >= 2.5x) {'PASS' if speedup >= 2.5 else 'FAIL'}")
    print(
        f"ours / pure forward over unique sentences: {overhead:.3f}x (target <= 1.25x) "
        f"{'PASS' if overhead <= 1.25 else 'FAIL'}"
    )
    return 0 if speedup >= 2.5 and overhead <= 1.25 and mismatches <= 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
