"""Pure detection code: simulators, feature functions, training, model registry, scoring.

No Kafka, faust, ClickHouse, web3 or prometheus here: the stream (`streams/`) and the
forensic tool call into this package. Importing the package stays cheap; XGBoost is only
imported by the modules that train, load or score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detectors.model import ensure_models as ensure_models

__all__ = ["ensure_models"]


def __getattr__(name: str) -> Any:
    # `from detectors import ensure_models` without importing xgboost for feature-only users.
    if name == "ensure_models":
        from detectors.model import ensure_models

        return ensure_models
    raise AttributeError(f"module 'detectors' has no attribute {name!r}")
