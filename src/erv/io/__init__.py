"""Files that jobs read and write: record files (JSON list or JSONL) with file:line errors,
atomic writes, a crash-safe appender, an output lock, and the one resumable batch-job runner
that the judge, the verifier's augmentation jobs and inference are built on.
"""
