"""Write a trained checkpoint as a plain Hugging Face folder: config.json, model.safetensors, tokenizer
files, reranker.json (the scoring contract, :mod:`reranker.model.contract`), a README.md model card and,
when validation chose a mix with the first stage, fusion.json; with ``--onnx``, ONNX files in ``onnx/``
(:mod:`reranker.serving.onnx_export`).

``reranker export CHECKPOINT --out DIR [--onnx [--quantize int8]] [--push-to-hub REPO]``;
``reranker export FOLDER --onnx [--quantize int8]`` adds ONNX files to an export folder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from reranker.core.atomic import previous_name, replace_folder
from reranker.core.errors import InputError
from reranker.model.adapters import ADAPTER_CONFIG, merged
from reranker.model.checkpoint import load_checkpoint
from reranker.model.fusion import write_fusion
from reranker.model.loading import load_tokenizer, quiet_transformers, set_padding_token
from reranker.serving.model_card import render_model_card, run_config_for, write_model_card
from reranker.serving.onnx_export import check_quantize, export_onnx, onnx_card_section, write_onnx


def export_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path,
    tokenizer_name_or_path: str | None = None,
    metrics: dict[str, float] | None = None,
    model_id: str | None = None,
    adapter_only: bool = False,
    onnx: bool = False,
    quantize: str | None = None,
) -> Path:
    """Export the reranker of a Lightning checkpoint to ``output_dir``, with a model card.

    A LoRA model is written with its adapters merged into the weights (a plain Hugging Face folder), or
    with ``adapter_only`` as the adapter alone (``adapter_config.json``, ``adapter_model.safetensors``:
    megabytes, loaded on top of the base model). ``reranker.json`` states how the model scores a pair
    (kind, lengths, truncation, normalisation, fusion), and the config and tokenizer carry the same values
    where sentence-transformers and the transformers pipeline read them.

    The card lists the base model, the run's data and settings (from ``<run>/.hydra/config.yaml`` when
    the checkpoint sits in a run folder) and ``metrics`` or, failing that, the run's ``metrics.json``.
    The folder is written next to its destination and moved into place at the end, so a failure
    leaves no half-written export. The tokenizer is the one the run trained with (stored in the
    checkpoint) unless another is given.

    ``onnx`` also writes ``onnx/model.onnx`` (an encoder kind's float32 graph) and ``quantize="int8"``
    ``onnx/model_qint8_quantized.onnx``, with the fingerprint of the weights they come from.
    """
    check_quantize(quantize)
    if quantize is not None and not onnx:
        raise InputError("quantize applies to the ONNX files: give onnx=True (--onnx) too")
    if onnx and adapter_only:
        raise InputError(
            "ONNX files are written from merged weights: leave out adapter_only (--adapter-only)"
        )
    checkpoint_path = Path(checkpoint_path)
    loaded = load_checkpoint(checkpoint_path)
    hparams = loaded.hyper_parameters
    contract = loaded.contract
    tokenizer = set_padding_token(load_tokenizer(tokenizer_name_or_path)) if tokenizer_name_or_path else None
    tokenizer = tokenizer or loaded.tokenizer
    is_lora = hasattr(loaded.model, "peft_config")
    if adapter_only and not is_lora:
        raise InputError(
            f"checkpoint {checkpoint_path} was trained without LoRA: it has no adapter to export alone"
        )
    model = loaded.model if adapter_only else merged(loaded.model)
    contract.write_native(model.get_base_model().config if adapter_only else model.config, tokenizer)
    if metrics is None:
        metrics = _run_metrics(checkpoint_path)
    output_dir = Path(output_dir)
    card = render_model_card(
        model_id or str(output_dir),
        hparams["model_name_or_path"],
        hparams,
        loaded.global_step,
        run_config_for(checkpoint_path),
        metrics,
        loaded.fusion,
        contract,
    )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    try:
        with quiet_transformers():
            model.save_pretrained(staging, safe_serialization=True)
        if adapter_only:
            _name_base_model(staging, hparams["model_name_or_path"])
        contract.write(staging)
        tokenizer.save_pretrained(staging)
        _name_tokenizer_class_for_transformers_4(staging)
        if onnx:
            written = write_onnx(model, tokenizer, contract.kind, staging, quantize)
            card += onnx_card_section([file.name for file in written])
        write_model_card(staging, card)
        if contract.mix is not None:
            write_fusion(staging, contract.mix, contract.fusion)
        replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def remove_export_leftovers(output_dir: str | Path) -> None:
    """Clear what a killed :func:`export_checkpoint` left beside ``output_dir``: a folder cut short while it
    was written (``.<name>-XXXX``) is removed; the previous export moved aside (``.<name>-previous``) is put
    back when no export took its place."""
    output_dir = Path(output_dir)
    previous = previous_name(output_dir)
    if previous.is_dir() and not output_dir.exists():
        previous.rename(output_dir)
    for leftover in output_dir.parent.glob(f".{output_dir.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _name_base_model(folder: Path, base: str) -> None:
    """The adapter names the base model as configured (a hub name, or the folder trained from)."""
    config_file = folder / ADAPTER_CONFIG
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _name_tokenizer_class_for_transformers_4(folder: Path) -> None:
    """transformers 5 names a tokenizer without a model-specific class ``TokenizersBackend``, a name
    transformers 4 cannot load; ``PreTrainedTokenizerFast`` is the same tokenizer to both."""
    config_file = folder / "tokenizer_config.json"
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text(encoding="utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _run_metrics(checkpoint_path: Path) -> dict[str, float] | None:
    """``<run>/metrics.json`` of the run that wrote the checkpoint, if it has been written."""
    metrics_file = checkpoint_path.resolve().parent.parent / "metrics.json"
    return json.loads(metrics_file.read_text()) if metrics_file.is_file() else None


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload an exported folder to a Hugging Face Hub model repository (created if missing)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="model", exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model")
    return commit.commit_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="reranker export",
        description="Export a reranker train checkpoint as a Hugging Face folder with a model card.",
    )
    parser.add_argument(
        "checkpoint",
        help="a .ckpt file written by reranker train, or an export folder to add ONNX files to (with --onnx)",
    )
    parser.add_argument("--out", help="the folder to write (replaced if it exists); required for a .ckpt")
    parser.add_argument(
        "--tokenizer",
        help="Hugging Face tokenizer folder or hub name (default: the one the run trained with)",
    )
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload the folder to this Hub repository")
    parser.add_argument(
        "--adapter-only",
        action="store_true",
        help="a LoRA model: write the adapter alone instead of the merged weights",
    )
    parser.add_argument(
        "--onnx", action="store_true", help="also write onnx/model.onnx (encoder kinds) for ONNX Runtime"
    )
    parser.add_argument(
        "--quantize", choices=["int8"], help="with --onnx, also onnx/model_qint8_quantized.onnx"
    )
    args = parser.parse_args(argv)
    try:
        if Path(args.checkpoint).is_dir():
            folder = _add_onnx(args)
        else:
            if args.out is None:
                raise InputError("--out is required to export a checkpoint")
            folder = export_checkpoint(
                args.checkpoint,
                args.out,
                args.tokenizer,
                model_id=args.push_to_hub,
                adapter_only=args.adapter_only,
                onnx=args.onnx,
                quantize=args.quantize,
            )
            print(f"exported {args.checkpoint} to {folder}")
    except InputError as err:
        raise SystemExit(f"error: {err}") from None
    if args.push_to_hub:
        print(f"uploaded to {push_to_hub(folder, args.push_to_hub)}")


def _add_onnx(args: argparse.Namespace) -> Path:
    """``reranker export FOLDER --onnx``: ONNX files added to the export folder in place."""
    folder = Path(args.checkpoint)
    if not args.onnx:
        raise InputError(f"{folder} is a folder: give --onnx to add ONNX files to it, or a .ckpt to export")
    if args.out is not None and Path(args.out).resolve() != folder.resolve():
        raise InputError(f"--out {args.out}: ONNX files are added to {folder} itself; leave out --out")
    if args.tokenizer or args.adapter_only:
        raise InputError("--tokenizer and --adapter-only apply to exporting a checkpoint, not to a folder")
    for path in export_onnx(folder, args.quantize):
        print(f"wrote {path}")
    return folder


if __name__ == "__main__":
    main()
