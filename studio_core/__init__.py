"""Wide & Deep Studio engine: DuckDB workspace, declarative spec, preprocessing, model, trainer.

No Streamlit here: the engine is usable from a notebook, the CLI (``wdstudio``) and the app.
"""

from studio_core.common.errors import Problem, SpecError, StudioError
from studio_core.spec.schema import Spec

__version__ = "0.1.0"
__all__ = ["Spec", "StudioError", "SpecError", "Problem", "__version__"]
