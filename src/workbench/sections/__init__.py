"""Report sections: what each notebook shows, computed by the package, one subsection at a time.

A notebook is a parameters cell, `open_dataset`, `choose_settings`, then one call per
subsection (``cycle_time.time_to_close(settings)``) whose `Section` displays itself. A
section the data cannot support says so in one sentence; one that fails says so too, and
the rest of the notebook goes on (`workbench.sections.base`).

Modules: `base` (the mechanism), `needs` (what the data must have), `settings` (parameters
chosen from the data), `common` (the data and the settings used), one module per notebook,
and `records` (what the runner reads back from executed notebooks).
"""
from ..lazy import lazy_exports

__all__ = ["Section", "section", "open_dataset", "overview", "settings_used", "Settings", "choose_settings"]

# Imported on first use: the runner reads `settings.run_horizon` without importing every section.
__getattr__, __dir__ = lazy_exports(__name__, {"Section": ".base", "section": ".base", "open_dataset": ".common",
                                               "overview": ".common", "settings_used": ".common",
                                               "Settings": ".settings", "choose_settings": ".settings"})
