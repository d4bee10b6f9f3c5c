"""The one rule for matching sample ids across label files, predictions, judgments and video names.

DFEW's csv says `1` where its clip is `00001.mp4`; predictions written by different tools say
`00001`, `1` or `00001.mp4`. Every comparison of sample ids goes through :func:`canonical_id`,
so that a label file, a predictions file and a judgments file agree on which sample an id names,
and two ids naming one sample in one file are caught as duplicates.
"""

from __future__ import annotations

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".mpg", ".mpeg")


def canonical_id(sample_id: object) -> str:
    """The form used to match ids across label files, predictions, judgments and video names.

    Strips a video extension and surrounding whitespace; an all-digit id loses its leading
    zeros ("00025" and "25" are the same DFEW clip).
    """
    text = str(sample_id).strip()
    lower = text.lower()
    for ext in VIDEO_EXTENSIONS:
        if lower.endswith(ext):
            text = text[: -len(ext)]
            break
    if text.isdigit():
        return str(int(text))
    return text
