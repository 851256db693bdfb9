"""AiiDA data types: labelled datasets and MLIP model files."""

from .dataset import LabelledDatasetData
from .model import MlipModelData

__all__ = ('LabelledDatasetData', 'MlipModelData')
