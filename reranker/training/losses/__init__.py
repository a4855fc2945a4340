"""Training objectives: one loss per file, each ``forward(scores [B, G], batch) -> scalar``.

``batch`` is the training batch of :class:`reranker.training.collate.TrainCollator`: ``labels`` ``[B, G]``
(1.0 for the positive, 0.0 for negatives; a loss also takes graded labels) and, when the data carries
them, the teacher columns ``teacher_scores`` and ``first_stage_scores`` ``[B, G]`` (NaN where a passage has
none; :mod:`reranker.training.losses.teachers`). Every column of a training batch is a real passage (groups
are filled to ``G``), so no loss needs a padding mask. A loss checks its arguments when constructed, and its
attribute ``teachers`` maps each config field that names a teacher to the column it reads (empty for a loss
without a teacher). ``conf/loss/<name>.yaml`` mirrors each constructor; ``mix`` sums several of them.
"""

from reranker.training.losses.bce import BinaryCrossEntropy
from reranker.training.losses.distill_kl import DistillKL
from reranker.training.losses.group_ce import GroupCrossEntropy
from reranker.training.losses.lambdaloss import LambdaLoss
from reranker.training.losses.listnet import ListNet
from reranker.training.losses.margin_mse import MarginMSE
from reranker.training.losses.mix import LossMix
from reranker.training.losses.plistmle import PListMLE
from reranker.training.losses.ranknet import RankNet

__all__ = [
    "BinaryCrossEntropy",
    "DistillKL",
    "GroupCrossEntropy",
    "LambdaLoss",
    "ListNet",
    "LossMix",
    "MarginMSE",
    "PListMLE",
    "RankNet",
]
