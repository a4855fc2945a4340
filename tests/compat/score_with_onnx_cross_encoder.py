"""Run by ``.venv-compat`` (see the Makefile): sentence-transformers' ``CrossEncoder(backend="onnx")`` on
an export's ONNX files. Optimum ONNX (which that backend loads through) admits transformers < 4.58 only.

``python score_with_onnx_cross_encoder.py PAIRS_JSON FOLDER FILE_NAME...`` prints, as JSON, the scores
of the pairs by each ``onnx/FILE_NAME``, and the class and file of the model that ran them.
"""

import json
import sys
from pathlib import Path

from sentence_transformers import CrossEncoder


def main() -> None:
    pairs_file, folder, *file_names = sys.argv[1:]
    pairs = json.loads(Path(pairs_file).read_text(encoding="utf-8"))
    result = {}
    for file_name in file_names:
        # export=False: the file must be there; sentence-transformers would otherwise export one itself.
        model = CrossEncoder(
            folder, backend="onnx", device="cpu", model_kwargs={"file_name": file_name, "export": False}
        )
        ort_model = model.transformers_model
        result[file_name] = {
            "scores": [float(score) for score in model.predict(pairs)],
            "model_class": type(ort_model).__name__,
            "model_path": str(getattr(ort_model, "model_path", "")),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
