"""The ``hf`` translation backend: any Hugging Face sequence-to-sequence translation model.

Marian (``Helsinki-NLP/opus-mt-*``, one model per language pair) needs no language codes. Multilingual
models need them: NLLB-200 takes FLORES codes (``eng_Latn``, ``kor_Hang``) and M2M100 takes ``__ko__``-style
tokens. ``--source``/``--target`` may be those codes or ISO 639-1 codes (``en``, ``ko``), which are mapped to
the form the model's tokenizer knows: the source code is set as ``tokenizer.src_lang`` and the target
token is forced as the first generated token. Texts are batched by length; on a GPU the model runs in
float16 unless ``dtype`` says otherwise. Greedy decoding by default (``num_beams`` 1), so a rerun gives the
same text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reranker.core.errors import InputError

# ISO 639-1 → FLORES-200 codes for the languages this project meets most; other codes pass through as given.
FLORES = {
    "en": "eng_Latn",
    "ko": "kor_Hang",
    "ja": "jpn_Jpan",
    "zh": "zho_Hans",
    "de": "deu_Latn",
    "fr": "fra_Latn",
    "es": "spa_Latn",
}


def model_identity(
    model_name: str | None, num_beams: int, max_length: int, max_segment_bytes: int = 1000
) -> str:
    """The cache identity of a model with the settings that change its output."""
    return f"{model_name} beams={num_beams} max_length={max_length} segment={max_segment_bytes}"


def language_token(tokenizer, code: str) -> str | None:
    """The tokenizer's single token for language ``code`` (as given, FLORES, or ``__code__``); None if none."""
    vocabulary = tokenizer.get_vocab()
    for candidate in (code, FLORES.get(code), f"__{code}__"):
        if candidate is not None and candidate in vocabulary:
            return candidate
    return None


class HfTranslate:
    """A seq2seq model from a folder or the hub (``name`` "hf")."""

    name = "hf"

    def __init__(
        self,
        source: str,
        target: str,
        model_name: str | None = None,
        batch_size: int = 16,
        max_length: int = 512,
        num_beams: int = 1,
        device: str | None = None,
        dtype: str | None = None,
        max_segment_bytes: int = 1000,
    ) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        if not model_name:
            raise InputError("the hf backend needs --model (e.g. facebook/nllb-200-distilled-600M)")
        if batch_size < 1 or num_beams < 1 or max_length < 2:
            raise InputError("--batch-size and --num-beams must be >= 1 and --max-length >= 2")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_name)
            model = AutoModelForSeq2SeqLM.from_pretrained(model_name)
        except (OSError, ValueError) as err:
            raise InputError(
                f"--model {model_name}: cannot load a seq2seq model and tokenizer ({err})"
            ) from None
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = "float16" if self.device.type == "cuda" else "float32"
        self.seq2seq = model.to(self.device, dtype=getattr(torch, dtype)).eval()
        self.generate_options: dict = {"num_beams": num_beams, "max_new_tokens": max_length}
        source_token = language_token(self.tokenizer, source)
        if source_token is not None and hasattr(self.tokenizer, "src_lang"):
            # M2M100 takes "ko" for its token "__ko__"; NLLB takes its token "kor_Hang" itself.
            bare = (
                source_token[2:-2] if source_token.startswith("__") and source_token.endswith("__") else None
            )
            self.tokenizer.src_lang = bare or source_token
        target_token = language_token(self.tokenizer, target)
        if target_token is not None:
            self.generate_options["forced_bos_token_id"] = self.tokenizer.convert_tokens_to_ids(target_token)
        elif hasattr(self.tokenizer, "src_lang"):
            raise InputError(f"--model {model_name} is multilingual and knows no language code {target!r}")
        self.batch_size, self.max_length = batch_size, max_length
        self.max_segment_bytes, self.chunk_size = max_segment_bytes, 8 * batch_size
        # Settings that change the output are part of the cache key.
        self.model = model_identity(model_name, num_beams, max_length, max_segment_bytes)

    @torch.inference_mode()
    def translate(self, segments: Sequence[str]) -> list[str]:
        order = sorted(range(len(segments)), key=lambda i: len(segments[i]))
        out = [""] * len(segments)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            inputs = self.tokenizer(
                [segments[i] for i in batch],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            generated = self.seq2seq.generate(**inputs, **self.generate_options)
            texts = self.tokenizer.batch_decode(generated, skip_special_tokens=True)
            for i, text in zip(batch, texts, strict=True):
                out[i] = text.strip()
        return out
