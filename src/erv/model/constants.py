"""Token ids with a meaning of their own in HumanOmni inputs (reference `humanomni/constants.py`).

Prompt ids carry one negative placeholder per modality where its features go; labels carry
`IGNORE_INDEX` where no loss is taken. One definition here for the processor, the splicing,
the datasets and the trainers.
"""

IGNORE_INDEX = -100
IMAGE_PLACEHOLDER = -200
VIDEO_PLACEHOLDER = -201
AUDIO_PLACEHOLDER = -202

PLACEHOLDER_IDS = {"<image>": IMAGE_PLACEHOLDER, "<video>": VIDEO_PLACEHOLDER, "<audio>": AUDIO_PLACEHOLDER}
"""Placeholder text in a prompt -> the id it becomes (`tokenizer_multimodal_token`)."""
