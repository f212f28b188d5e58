"""Data: the canonical schema, validation, adapters for real logs, the simulator, splits."""

from vidrec.data.dataset import Dataset, read_dataset, write_dataset
from vidrec.data.ids import IdMap

__all__ = ["Dataset", "IdMap", "read_dataset", "write_dataset"]
