"""AiiDA data types: ``LabelledDatasetData`` (labelled frames as arrays, with an exact extended-XYZ round trip)
and ``MlipModelData`` (an MLIP model file with its family, covered elements, cutoff (Å), sha256 and
provenance)."""

from .dataset import LabelledDatasetData
from .model import MlipModelData

__all__ = ('LabelledDatasetData', 'MlipModelData')
