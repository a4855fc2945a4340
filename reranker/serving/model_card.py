"""The ``README.md`` model card of an exported reranker: base model, data, training settings, evaluation."""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reranker.core.errors import InputError
from reranker.core.tables import below_first_stage, format_comparison
from reranker.model.contract import ScoringContract
from reranker.model.kinds import ModelKind
from reranker.model.loading import PACKAGED_MODELS, looks_like_path, packaged_model_path

# (config key, label) of the run's settings shown in the card, when the run's config is known.
RUN_SETTINGS = (
    ("data.group_size", "group size (1 positive + negatives)"),
    ("data.batch_size", "queries per batch"),
    ("trainer.accumulate_grad_batches", "gradient accumulation"),
    ("data.max_length", "max tokens per pair"),
    ("trainer.max_epochs", "max epochs"),
    ("trainer.max_steps", "max steps"),
    ("trainer.precision", "precision"),
    ("trainer.gradient_clip_val", "gradient clipping"),
    ("seed", "seed"),
)
# (hyperparameter, label) of the module, always in the checkpoint.
MODULE_SETTINGS = (
    ("lr", "peak learning rate (AdamW, linear warm-up and decay)"),
    ("warmup_ratio", "warm-up share of steps"),
    ("weight_decay", "weight decay"),
    ("freeze_embeddings", "frozen word embeddings"),
    ("dropout", "training dropout (None: the base model's)"),
    ("attention_dropout", "training dropout on attention probabilities (None: as dropout)"),
    ("lora", "LoRA adapters, merged into the weights (None: every weight trained)"),
)


def run_config_for(checkpoint_path: Path) -> DictConfig | None:
    """The Hydra config of the run that wrote a checkpoint (``<run>/.hydra/config.yaml``, beside
    ``<run>/checkpoints/``), or None when the checkpoint does not sit in a run folder."""
    config_file = checkpoint_path.resolve().parent.parent / ".hydra" / "config.yaml"
    return OmegaConf.load(config_file) if config_file.is_file() else None


def describe_base_model(name_or_path: str) -> str:
    """A hub name as is; a packaged model by its name rather than its site-packages folder."""
    for name in PACKAGED_MODELS:
        try:
            if Path(name_or_path).resolve() == Path(packaged_model_path(name)).resolve():
                return name
        except InputError:  # the package is not installed here: the path is shown as given
            continue
    return name_or_path


def _config_value(config: dict, key: str) -> object:
    """A value of the run's config as written there: interpolations such as ``${sample_data:x}`` stay
    unresolved, since they name the source better than the folder they resolved to on the training machine."""
    value: object = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _describe_loss(settings: dict) -> str:
    """The training objective of the run's ``loss`` group, e.g. `` with `DistillKL` (alpha 0.5, temperature 2.0)``."""
    loss = settings.get("loss")
    if not isinstance(loss, dict) or "_target_" not in loss:
        # Runs from before the loss group trained with group cross-entropy, the default since.
        loss = {"_target_": "GroupCrossEntropy"}
    name = str(loss["_target_"]).rsplit(".", 1)[-1]
    arguments = ", ".join(f"{key} {value}" for key, value in loss.items() if key != "_target_")
    return f" with the loss `{name}`" + (f" ({arguments})" if arguments else "")


def _describe_data(value: object) -> str:
    """Data files as configured; the package's own sample data by name."""
    files = value if isinstance(value, list) else [value]
    names = []
    for file in map(str, files):
        sample = re.fullmatch(r"\$\{sample_data:(.+)\}", file)
        names.append(
            f"`{sample.group(1)}` (Korean sample data shipped with reranker)" if sample else f"`{file}`"
        )
    return ", ".join(names)


def render_model_card(
    model_id: str,
    base_model: str,
    hparams: dict,
    global_step: int | None,
    run_config: DictConfig | None = None,
    metrics: dict[str, float] | None = None,
    fusion: dict | None = None,
    contract: ScoringContract | None = None,
) -> str:
    """Markdown with Hugging Face metadata; sections appear only for what is known."""
    base = describe_base_model(base_model)
    settings = OmegaConf.to_container(run_config, resolve=False) if run_config is not None else {}
    contract = contract or ScoringContract(ModelKind.from_config(hparams.get("kind")))
    kind = contract.kind
    metadata = ["---", "library_name: transformers", f"pipeline_tag: {kind.pipeline_tag}"]
    metadata += ["tags:", "- reranker", "- cross-encoder", f"- {kind.pipeline_tag}"]
    if "/" in base and not looks_like_path(base):  # a hub id, which the Hub links to
        metadata.append(f"base_model: {base}")
    metadata.append("---")

    lines = [
        *metadata,
        "",
        "# Cross-encoder reranker",
        "",
        f"Fine-tuned from `{base}` by `reranker`{_describe_loss(settings) if run_config is not None else ''}.",
        f"It scores a (query, passage) pair by {kind.score_description}; a higher score means a more relevant",
        "passage.",
        "",
        "## Usage",
        "",
        *_usage(model_id, kind, contract.max_length, contract.query_max_length),
        *_contract_section(contract),
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| base model | `{base}` |",
    ]
    if run_config is not None:
        data_keys = (
            ("data.train_files", "training data"),
            ("data.val_files", "validation data"),
            ("data.val_corpus", "validation corpus"),
        )
        for key, label in data_keys:
            value = _config_value(settings, key)
            if value is not None:
                lines.append(f"| {label} | {_describe_data(value)} |")
    for key, label in MODULE_SETTINGS:
        if key in hparams:
            lines.append(f"| {label} | {hparams[key]} |")
    if run_config is not None:
        for key, label in RUN_SETTINGS:
            value = _config_value(settings, key)
            if value is not None and not (key == "trainer.max_steps" and value == -1):
                lines.append(f"| {label} | {value} |")
    if global_step is not None:
        lines.append(f"| optimiser steps of this checkpoint | {global_step} |")

    if metrics and any(key.startswith("val/") for key in metrics):
        lines += ["", "## Evaluation", "", "On the validation data above, at this checkpoint:", ""]
        lines += ["```", format_comparison(metrics), "```"]
        warning = below_first_stage(metrics)
        if warning:
            lines += ["", f"**{warning}**"]
    if fusion:
        lines += _fusion_section(fusion)
    lines += _truncation_section(metrics or {})
    return "\n".join(lines) + "\n"


def _truncation_section(metrics: dict[str, float]) -> list[str]:
    """How much of each data file the run's lengths cut (``truncation/<file>/*`` of ``metrics.json``)."""
    files = sorted({key.split("/")[1] for key in metrics if key.startswith("truncation/")})
    if not files:
        return []
    lines = [
        "",
        "## Truncation",
        "",
        "Measured at the start of training on a sample of each data file's pairs:",
        "",
    ]
    lines += [
        "| file | pairs sampled | pairs cut at max length | query tokens lost | pair length p50 / p90 / p99 |"
    ]
    lines += ["|---|---|---|---|---|"]
    for name in files:
        value = {
            key.rsplit("/", 1)[1]: v for key, v in metrics.items() if key.startswith(f"truncation/{name}/")
        }
        lengths = " / ".join(f"{value.get(f'pair_length_p{p}', 0):.0f}" for p in (50, 90, 99))
        lines.append(
            f"| `{name}` | {value.get('pairs_sampled', 0):.0f} | {value.get('pairs_cut', 0):.1%} "
            f"| {value.get('query_tokens_lost', 0):.1%} | {lengths} |"
        )
    return lines


def _fusion_section(fusion: dict) -> list[str]:
    """How to mix this reranker with the first stage's scores, as chosen on the validation data."""
    measured = [f"{key} {value:.4f}" for key, value in fusion.items() if key.startswith("val/")]
    return [
        "",
        "## Fusion with the first stage",
        "",
        f"Validation chose `{fusion['method']}` with weight a = {fusion['weight']:.2f} of the reranker: per query,",
        f"`{fusion['weight']:.2f} * {fusion['method']}(reranker logit) + {1 - fusion['weight']:.2f} * "
        f"{fusion['method']}(first-stage score)`" + (f" ({', '.join(measured)})." if measured else "."),
        "`fusion.json` records it; `reranker.Reranker(folder).rerank(query, passages, first_stage_scores=...)`",
        "applies it.",
    ]


def _flag_query_length(query_max_length: int | None) -> str:
    return f" and `query_max_length={query_max_length}`" if query_max_length else ""


def _usage(model_id: str, kind: ModelKind, max_length: int | None, query_length: int | None) -> list[str]:
    """How to score with the folder: plain transformers for a classifier without prompt; a decoder reads
    each pair through its prompt, which ``reranker.json`` and the folder's chat template hold, so
    ``Reranker`` and ``CrossEncoder`` take raw pairs."""
    length = max_length or 512
    classifier = [
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{model_id}")',
        f'model = AutoModelForSequenceClassification.from_pretrained("{model_id}").eval()',
        'pairs = [["query", "passage one"], ["query", "passage two"]]',
        f'features = tokenizer(pairs, padding=True, truncation=True, max_length={length}, return_tensors="pt")',
        "scores = model(**features).logits.view(-1)  # higher is more relevant",
        "```",
        "",
        "`pipeline('text-classification')` with `{'text': query, 'text_pair': passage}` inputs and",
        "`truncation=True` returns the logit under the label `relevant`. sentence-transformers' `CrossEncoder`",
        "returns the logit too (`activation_fn=torch.nn.Sigmoid()` for its sigmoid); FlagEmbedding's",
        f"`FlagReranker` loads this folder: pass it `max_length={length}`{_flag_query_length(query_length)}.",
        "",
    ]
    if kind.template is None:
        return classifier
    lines = [
        f"A decoder reranker: each pair is written into its prompt and scored by {kind.score_description}.",
        "The prompt is in `reranker.json` and in the tokenizer's chat template (a `query` and a",
        "`document` message), so these take raw (query, passage) pairs:",
        "",
        "```python",
        "from reranker import Reranker",
        "",
        f'Reranker("{model_id}").score([("query", "passage one"), ("query", "passage two")])',
        "",
        "from sentence_transformers import CrossEncoder",
        "",
        f'CrossEncoder("{model_id}").predict([("query", "passage one")])  # the same score',
        "```",
        "",
    ]
    if kind.pipeline_tag != "text-classification":
        return lines
    return [
        *lines,
        "With plain transformers, fill in the prompt's two sides (`reranker.json`) first:",
        "",
        *classifier[:10],
    ]


def _contract_section(contract: ScoringContract) -> list[str]:
    """What decides a score, as recorded in ``reranker.json``, and which clients follow which part."""
    if not contract.recorded:
        return []
    lines = [
        "## Scoring",
        "",
        "`reranker.json` records how validation scored this model; `Reranker`, `reranker evaluate`, the",
        "tokenizer (`model_max_length`) and so `CrossEncoder` and the pipeline follow it by default:",
        "",
        "| setting | value |",
        "|---|---|",
        f"| max tokens per pair (`max_length`) | {contract.max_length} |",
        f"| truncation | {contract.truncation} |",
        "| score | the raw logit (no normalisation) |",
        "",
    ]
    if contract.query_max_length is not None and contract.kind.template is None:
        lines += [
            f"Queries are cut to {contract.query_max_length} tokens before the passage is. `Reranker` and",
            "`FlagReranker` (given `query_max_length`) apply this; `CrossEncoder` and the pipeline have no such",
            "setting and cut the longer text of a pair first, so they score alike only queries of at most",
            f"{contract.query_max_length} tokens.",
            "",
        ]
    return lines


def write_model_card(folder: Path, text: str) -> Path:
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
