"""conf/model/: each file starts from one base (``_encoder.yaml``, ``_decoder.yaml``, or another model
file) and lists only what differs from it, and every choice composes into a complete ``model`` node."""

from pathlib import Path

import pytest
from helpers import CONF, compose_config
from omegaconf import OmegaConf

from reranker.training.config import unknown_config_choice

MODEL_DIR = Path(CONF) / "model"
CHOICES = sorted(path.stem for path in MODEL_DIR.glob("*.yaml") if not path.stem.startswith("_"))
ABSENT = object()


def model_node(name: str) -> dict:
    """The ``model`` node that ``model=name`` composes, interpolations as written."""
    cfg = compose_config([f"model={name}", "data.train_files=x.jsonl"])
    return OmegaConf.to_container(cfg.model, resolve=False)


def leaves(node: dict, prefix: tuple = ()) -> dict[tuple, object]:
    """Every value that is not a mapping, keyed by its path: ``{("kind", "form"): "yes_no", ...}``."""
    found = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            found.update(leaves(value, (*prefix, key)))
        else:
            found[(*prefix, key)] = value
    return found


@pytest.mark.parametrize("name", [*CHOICES, "_decoder"])
def test_each_model_file_lists_only_what_differs_from_its_base(name):
    own = OmegaConf.to_container(OmegaConf.load(MODEL_DIR / f"{name}.yaml"), resolve=False)
    defaults = own.pop("defaults", None)
    assert defaults is not None and len(defaults) == 2 and defaults[1] == "_self_", (
        f"{name}.yaml: start from one base: defaults: [_encoder, _self_] (or _decoder, or another model)"
    )
    base = leaves(model_node(defaults[0]))
    repeated = [".".join(path) for path, value in leaves(own).items() if base.get(path, ABSENT) == value]
    assert repeated == [], f"{name}.yaml repeats its base {defaults[0]}: {repeated}"


@pytest.mark.parametrize("name", CHOICES)
def test_each_model_choice_composes_complete(name):
    cfg = compose_config([f"model={name}", "data.train_files=x.jsonl"])
    assert OmegaConf.missing_keys(cfg.model) == set()  # the bases leave the weights and lr to each file
    assert cfg.model._target_ == "reranker.training.module.RerankerModule"


def test_the_bases_are_not_choices():
    message = unknown_config_choice(["model=_encoder"], Path(CONF))
    assert message is not None and message.startswith("unknown model '_encoder': choose one of bge_reranker")
    assert "_decoder" not in message and "_encoder," not in message
    assert unknown_config_choice(["model=qwen3_reranker_4b"], Path(CONF)) is None
