"""Tiny in-test verifiers: a word-level tokenizer and a small RoBERTa, built from scratch.

Nothing here downloads; the models are random-init or trained in the test that uses them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class FixedProbabilityModel(torch.nn.Module):
    """A stand-in classifier returning preset probabilities per input text.

    `table` maps a text to its probability row; the tokenizer built by `table_tokenizer`
    encodes each text as one token, so the model can look rows up by token id. Used to pin
    Algorithm 1 on hand-made label sets through the real reward code path.
    """

    def __init__(self, rows: torch.Tensor, labels: Sequence[str]):
        super().__init__()
        from transformers import PretrainedConfig

        self.config = PretrainedConfig(
            num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}
        )
        probs = rows.clamp(1e-6, 1 - 1e-6)
        self.register_buffer("logit_table", torch.log(probs) - torch.log1p(-probs))
        self.calls = 0
        self.rows_seen = 0

    def forward(self, input_ids, attention_mask=None):
        from types import SimpleNamespace

        if bool((input_ids[:, 1] == 3).any()):
            raise KeyError("a text missing from the fake verifier's table was scored")
        self.calls += 1
        self.rows_seen += input_ids.shape[0]
        return SimpleNamespace(logits=self.logit_table[input_ids[:, 1]])


def table_tokenizer(texts: Sequence[str]):
    """A tokenizer mapping each whole text to one id (row index + 4), wrapped in <s> … </s>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for text in texts:
        vocab.setdefault(text, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("\n", behavior="removed")  # texts never hold newlines here
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=8,
    )


def fake_verifier(table: dict, head_labels: Sequence[str], *, taxonomy=None, batch_size: int = 64, **kwargs):
    """A `Verifier` whose probabilities are `table[text][label]` (0 for labels not given)."""
    from erv.verifier.model import Verifier

    texts = list(table)
    index = {label: j for j, label in enumerate(head_labels)}
    rows = torch.zeros((len(texts) + 4, len(head_labels)))
    for i, text in enumerate(texts):
        for label, prob in table[text].items():
            rows[i + 4, index[label]] = prob
    model = FixedProbabilityModel(rows, head_labels)
    return Verifier(model, table_tokenizer(texts), taxonomy=taxonomy, batch_size=batch_size, **kwargs)
