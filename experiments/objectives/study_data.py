"""The study's derived data: built from ``../shared/data`` into ``WORK/data/<domain>/``, and its fingerprint.

A built folder holds::

    train.jsonl          training triplets mined by the hybrid first stage, with pos_first_stage/neg_first_stage
    val.jsonl            validation lists: the hybrid top 10 of held-out questions, with first-stage scores
    eval/queries.jsonl   evaluation questions {qid, query, pos_ids}
    eval/corpus.jsonl    their passages {id, title, text}
    lists/<name>.jsonl   each first stage's top 10 of the evaluation questions (hybrid, dense), as retrieved

The build runs the project's own commands (``prepare squad``, ``prepare candidates``; the settings of
``experiments/dense_first_stage/data.sh``) into ``<folder>.partial`` and renames it when every file is
written, so a folder is either whole or absent. The fingerprint is a digest of every file above; numbers
are rounded to 6 decimals first, so the last-bit noise of float arithmetic on another machine does not
count as other data, while any other change of a text, an id, an order or a score does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reranker.core.errors import InputError

KORQUAD = "korquad/KorQuAD_v1.0_dev.json"
LISTS = ("hybrid", "dense")
# multilingual-e5-small as the dense side: mean pooling, e5's prefixes (experiments/dense_first_stage).
DENSE_OPTIONS = ("--pooling", "mean", "--query-prefix", "query: ", "--passage-prefix", "passage: ",
                 "--dense-max-length", "256")  # fmt: skip


@dataclass(frozen=True)
class StudyData:
    """A built (or given) data folder of the layout above."""

    folder: Path

    @property
    def train(self) -> Path:
        return self.folder / "train.jsonl"

    @property
    def val(self) -> Path:
        return self.folder / "val.jsonl"

    @property
    def corpus(self) -> Path:
        return self.folder / "eval" / "corpus.jsonl"

    @property
    def lists(self) -> dict[str, Path]:
        """First stage -> its candidate lists of the evaluation questions."""
        return {path.stem: path for path in sorted((self.folder / "lists").glob("*.jsonl"))}

    def files(self) -> list[Path]:
        """Every file the fingerprint covers; an InputError names the first one missing."""
        files = [self.train, self.val, self.corpus, *self.lists.values()]
        missing = [path for path in files if not path.is_file()]
        if missing or not self.lists:
            raise InputError(
                f"{missing[0] if missing else self.folder / 'lists'}: missing from the study's data"
            )
        queries = self.folder / "eval" / "queries.jsonl"
        return [*files, queries] if queries.is_file() else files


def _rounded(value: object) -> object:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def file_digest(path: Path) -> str:
    """sha256 of a JSONL file's records with their numbers rounded (see the module docstring)."""
    digest = hashlib.sha256()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = _rounded(json.loads(line))
                digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode() + b"\n")
    return digest.hexdigest()


def fingerprint(data: StudyData) -> dict:
    """``{"digest", "files": {relative path: digest}}`` of the data's files."""
    files = {str(path.relative_to(data.folder)): file_digest(path) for path in data.files()}
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"digest": combined, "files": files}


def build_commands(folder: Path, shared: Path, me5: Path, embeddings: Path, python: str) -> list[list[str]]:
    """The commands that build a KorQuAD folder (see the module docstring)."""
    dense = ["--dense-model", str(me5), *DENSE_OPTIONS]
    commands = [
        [python, "-m", "reranker.prepare", "squad", str(shared / "data" / KORQUAD), "--out", str(folder),
         "--sentences-per-passage", "2", "--eval-fraction", "0.3", "--val-fraction", "0.05",
         "--val-candidates", "10", "--max-val-queries", "48", "--max-eval-queries", "200",
         "--num-random-negatives", "3", "--num-hard-negatives", "4", "--hard-negative-window", "3", "50",
         "--seed", "42", "--retriever", "hybrid", "--first-stage-scores", *dense,
         "--embedding-cache", str(embeddings / "korquad-train")],
    ]  # fmt: skip
    for retriever in LISTS:
        commands.append(
            [python, "-m", "reranker.prepare", "candidates", "--queries", str(folder / "eval" / "queries.jsonl"),
             "--corpus", str(folder / "eval" / "corpus.jsonl"), "--out", str(folder / "lists" / f"{retriever}.jsonl"),
             "--top-k", "10", "--retriever", retriever, *dense, "--embedding-cache", str(embeddings / "korquad-eval")]
        )  # fmt: skip
    return commands


def ensure_model(me5: Path, shared: Path, python: str) -> None:
    """multilingual-e5-small as a Hugging Face folder, converted by ``../shared/tools/me5-small`` if absent."""
    if (me5 / "model.safetensors").is_file():
        return
    tool = shared / "tools" / "me5-small" / "convert.sh"
    if not tool.is_file():
        raise InputError(
            f"{tool}: not found (give --shared, or --base-model with a built multilingual-e5-small)"
        )
    subprocess.run([str(tool), str(me5), python], check=True)


def build(
    domain: str, folder: Path, shared: Path, me5: Path, embeddings: Path, python: str = sys.executable
) -> StudyData:
    """The domain's data folder, built unless it is already whole."""
    if domain != "korquad":
        raise InputError(f"--domain {domain}: only korquad is built by the study so far")
    if folder.is_dir():
        return StudyData(folder)
    source = shared / "data" / KORQUAD
    if not source.is_file():
        raise InputError(f"{source}: not found (give --shared, the folder holding data/ and tools/)")
    ensure_model(me5, shared, python)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "lists").mkdir(parents=True)
    # Each command's summary (counts, the first stage's recall@10 and MRR@10 on the lists) goes to build.log.
    with (partial / "build.log").open("w", encoding="utf-8") as log:
        for command in build_commands(partial, shared, me5, embeddings, python):
            print("$", " ".join(command), flush=True)
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            subprocess.run(command, check=True, stdout=log)
    partial.rename(folder)
    return StudyData(folder)
