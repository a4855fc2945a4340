"""The ``reranker`` console script: ``reranker <command> [arguments]``.

Each command is also ``python -m reranker.<command>``. Exit status, alike for every command: 0 done;
1 bad input (data files, configuration values, paths, checkpoints: one ``error: ...`` line naming file,
line and field) or a run stopped by non-finite losses; 2 a command line that does not parse (unknown
command or option, missing argument).
"""

from __future__ import annotations

import importlib
import os
import sys

# command → (module with main(), one-line summary)
COMMANDS = {
    "prepare": ("reranker.preparation.prepare", "build triplets, evaluation sets and BM25 candidates"),
    "train": ("reranker.train", "train a reranker (Hydra overrides: reranker train experiment=demo_ko)"),
    "evaluate": ("reranker.evaluation.evaluate", "compare rerankers on an evaluation set, with paired tests"),
    "export": ("reranker.serving.export", "write a checkpoint as a Hugging Face folder with a model card"),
    "leaderboard": ("reranker.evaluation.leaderboard", "rank the runs of a sweep (-m) folder"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    return (
        "usage: reranker <command> [arguments]\n\ncommands:\n"
        + "\n".join(lines)
        + ("\n\n`reranker <command> --help` describes a command's arguments.")
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        raise SystemExit(0 if argv else 2)
    command, arguments = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{usage()}\n\nerror: unknown command {command!r}", file=sys.stderr)
        raise SystemExit(2)
    if command == "train":
        # Run as `python -m reranker.train`, in this process: Hydra reads its overrides from the command line,
        # and Lightning starts the other DDP processes (and a Slurm requeue reruns the job) by running that
        # command line again, which must name the training module.
        os.execv(sys.executable, [sys.executable, "-m", "reranker.train", *arguments])
    importlib.import_module(COMMANDS[command][0]).main(arguments)


if __name__ == "__main__":
    main()
