"""Triplet data: reading and checking files, group sampling with random negatives, collation."""

from reranker.data.datamodule import TripletDataModule
from reranker.data.triplets import read_triplets

__all__ = ["TripletDataModule", "read_triplets"]
