"""Score predictions: the paper code's entry-point name, with `erv evaluate`'s arguments.

python eval_score.py --predictions P.jsonl --dataset MAFW [--judgments J.jsonl] [--json OUT]
"""

import sys

from erv.cli import run_command

if __name__ == "__main__":
    sys.exit(run_command("evaluate", sys.argv[1:], prog="eval_score.py"))
