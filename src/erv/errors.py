"""Exception types a user can cause, each carrying enough context to find the bad input.

The CLI catches :class:`ErvError` and prints its message as one line, so every message must
name the file, line or sample it is about.
"""

from __future__ import annotations

import re


class ErvError(Exception):
    """Base class for errors caused by user input or environment, not by bugs."""


class TaxonomyError(ErvError, ValueError):
    """An unknown dataset/taxonomy name or a label that is not part of a taxonomy."""


class RecordError(ErvError, ValueError):
    """A malformed, duplicate or inconsistent record in a JSON/JSONL file."""


class LabelFileError(ErvError, ValueError):
    """A dataset label file (DFEW csv, MAFW txt/xlsx, EMER csv) that cannot be read."""


class MediaError(ErvError, RuntimeError):
    """A video or audio file that is missing, empty, corrupt or unreadable."""


class ConfigError(ErvError, ValueError):
    """A recipe, checkpoint directory or command-line combination that cannot work."""


class ModelInputError(ErvError, ValueError):
    """Model inputs that do not fit together (placeholders without features, wrong shapes...)."""


class ErvWarning(UserWarning):
    """Something a user should know that does not stop the run (a torn last line dropped ...).

    The CLI prints these as one plain line (`erv <command>: warning: ...`), without Python's
    source-line echo.
    """


def one_line_text(message: str) -> str:
    """A message on one line; for an error re-raised from a DataLoader worker, its original message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return message
    if any(line.startswith("Original Traceback") for line in lines):
        last = lines[-1]
        return re.sub(r"^[\w.]+(?:Error|Exception): ", "", last)
    return " ".join(lines)
