"""Files that jobs read and write: record files (JSON list or JSONL) with file:line errors,
atomic writes, a crash-safe appender, an output lock, and the one resumable batch-job runner
that the judge, the verifier's jobs and inference are built on; with what every command shares
around them: input hashes tying resumed records to their input (`identity`), checks of output
locations before work (`outputs`), model locations that fail fast (`locations`), recipe files
(`recipes`) and torch thread counts (`threads`).
"""
