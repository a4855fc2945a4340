"""Prepare training and evaluation data: ``reranker prepare {squad,candidates,encode,translate,mine,teacher} ...``.

One module per subcommand, each with its arguments (``add_arguments``) and one keyword-argument function:
``squad`` (:func:`~reranker.preparation.squad.prepare_squad`), ``candidates``
(:func:`~reranker.preparation.candidates.prepare_candidates`), ``encode`` (a dense retriever's embedding
cache, one process per GPU), ``translate``, ``mine`` and ``teacher``.
The same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import json

from reranker.core.errors import InputError
from reranker.preparation import candidates, encode, mine, squad, teacher, translate
from reranker.preparation.candidates import prepare_candidates
from reranker.preparation.encode import prepare_encode
from reranker.preparation.mine import prepare_mine
from reranker.preparation.retrievers import pop_retriever_arguments
from reranker.preparation.squad import prepare_squad
from reranker.preparation.teacher import prepare_teacher
from reranker.preparation.translate import prepare_translate

# Subcommand → (its module, its function).
COMMANDS = {
    "squad": (squad, prepare_squad),
    "candidates": (candidates, prepare_candidates),
    "encode": (encode, prepare_encode),
    "translate": (translate, prepare_translate),
    "mine": (mine, prepare_mine),
    "teacher": (teacher, prepare_teacher),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reranker prepare", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (module, _) in COMMANDS.items():
        module.add_arguments(commands.add_parser(name, help=module.HELP))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    arguments = vars(parse_args(argv))
    command = arguments.pop("command")
    if "retriever" in arguments:
        arguments["retriever"], arguments["retriever_options"] = pop_retriever_arguments(arguments)
    for name in ("window", "hard_negative_window"):
        if name in arguments:
            arguments[name] = tuple(arguments[name])
    try:
        summary = COMMANDS[command][1](**arguments)
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    if summary is not None:  # None: a data-parallel rank other than zero, which reports nothing
        print(json.dumps(summary, ensure_ascii=False, sort_keys=True))


if __name__ == "__main__":
    main()
