"""workbench: a Jupyter-based research workbench for CRM journey analytics."""
from .exceptions import DataQualityWarning, DataValidationError, SourceError, SpecError, WorkbenchError
from .lazy import lazy_exports

__version__ = "0.1.0"

__all__ = ["Dataset", "load_dataset", "validate", "from_frames", "WorkbenchError", "SpecError", "SourceError",
           "DataValidationError", "DataQualityWarning", "__version__"]

# Imported on first use: `import workbench.run.jobs` (a run's worker) does not import pandas.
__getattr__, __dir__ = lazy_exports(__name__, {"Dataset": ".dataset.model", "load_dataset": ".dataset.loader",
                                               "validate": ".dataset.loader", "from_frames": ".dataset.loader"})
