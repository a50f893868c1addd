"""workbench: a Jupyter-based research workbench for CRM journey analytics."""
from .exceptions import DataQualityWarning, DataValidationError, SpecError, SourceError, WorkbenchError
from .loader import from_frames, load_dataset, validate
from .model import Dataset

__version__ = "0.1.0"

__all__ = ["Dataset", "load_dataset", "validate", "from_frames", "WorkbenchError", "SpecError", "SourceError",
           "DataValidationError", "DataQualityWarning", "__version__"]
