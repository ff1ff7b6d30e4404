"""nmm-connectome: Predict motor-task functional connectivity from resting-state connectivity (HCP)."""

from nmm_core.exports import lazy_exports

__version__ = "0.1.0"

# Public names (what nmm-bench's bridge-matching benchmark uses), imported on first use.
_EXPORTS: dict[str, str] = {
    "EdgeBridgeNet": "bridge", "EdgeScaler": "bridge", "train_bridge": "bridge",
    "BridgeSettings": "settings", "SyntheticSpec": "synthetic", "synthesize": "synthetic",
    "SplitSettings": "commands", "split_subjects": "commands", "score": "evaluate", "to_edges": "evaluate",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
