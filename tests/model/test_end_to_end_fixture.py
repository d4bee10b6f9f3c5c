"""Raw files → processor → model on the reference fixture: the whole issue-5 path at once.

The component tests pin each stage against the fixture; this one checks that the pieces
compose: `load_pretrained` returns a processor whose output, fed to the model unchanged,
reproduces the reference logits and greedy tokens from the raw frames, WAV and instruction.
"""

import pytest
import torch
from safetensors.torch import load_file

from erv.data.prompts import TASK_PROMPT
from erv.model import HumanOmniProcessor, load_pretrained


@pytest.fixture(scope="module")
def loaded(tiny_fixture):
    model, processor = load_pretrained(
        tiny_fixture / "checkpoint", bert=str(tiny_fixture / "bert-tiny"), torch_dtype=torch.float32
    )
    return model, processor


def test_raw_inputs_reproduce_reference_logits_and_tokens(loaded, tiny_fixture):
    model, processor = loaded
    assert isinstance(processor, HumanOmniProcessor)
    batch = processor(
        [str(tiny_fixture / "inputs" / "frames")], [TASK_PROMPT], audios=[str(tiny_fixture / "inputs" / "audio.wav")]
    )
    reference_inputs = load_file(str(tiny_fixture / "inputs.safetensors"))
    assert torch.equal(batch["input_ids"], reference_inputs["input_ids"])
    inputs = processor.model_inputs(batch)
    assert "sample_index" not in inputs and set(inputs) == set(processor.model_input_names)
    expected = load_file(str(tiny_fixture / "outputs.safetensors"))
    with torch.inference_mode():
        logits = model(**inputs).logits
        new_tokens = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert (logits - expected["logits"]).abs().max().item() <= 1e-4
    assert new_tokens.tolist() == expected["generated_ids"].tolist()
    assert processor.batch_decode(new_tokens)[0] == processor.decode(expected["generated_ids"][0])


def test_batch_of_different_instructions_generates_like_single_samples(loaded, tiny_fixture):
    model, processor = loaded
    frames, audio = str(tiny_fixture / "inputs" / "frames"), str(tiny_fixture / "inputs" / "audio.wav")
    instructions = [TASK_PROMPT, "Which emotion?", "Describe the emotion of the person in the clip, then answer."]
    batch = processor([frames] * 3, instructions, audios=[audio] * 3)
    with torch.inference_mode():
        together = model.generate(**processor.model_inputs(batch), max_new_tokens=6, do_sample=False)
        for row, instruction in enumerate(instructions):
            alone = processor([frames], [instruction], audios=[audio])
            single = model.generate(**processor.model_inputs(alone), max_new_tokens=6, do_sample=False)
            assert together[row].tolist() == single[0].tolist()
