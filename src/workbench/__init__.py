"""workbench: a Jupyter-based research workbench for CRM journey analytics."""
from .dataset.loader import from_frames, load_dataset, validate
from .dataset.model import Dataset
from .exceptions import DataQualityWarning, DataValidationError, SourceError, SpecError, WorkbenchError

__version__ = "0.1.0"

__all__ = ["Dataset", "load_dataset", "validate", "from_frames", "WorkbenchError", "SpecError", "SourceError",
           "DataValidationError", "DataQualityWarning", "__version__"]
