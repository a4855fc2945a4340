"""A smaller student: the first N encoder layers of a BERT-type model folder (embeddings and tokenizer kept).

``python experiments/korquad_recipe/make_student.py SOURCE_DIR OUT_DIR LAYERS``
"""

import shutil
import sys
from pathlib import Path

from transformers import AutoConfig, AutoModel

source, out, layers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
config = AutoConfig.from_pretrained(source, num_hidden_layers=layers)
# Layers beyond N are simply not loaded: the student starts from the teacher-size model's lower layers.
AutoModel.from_pretrained(source, config=config).save_pretrained(out)
for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "sentencepiece.bpe.model"):
    if (Path(source) / name).is_file():
        shutil.copy(Path(source) / name, out / name)
