"""nmm-connectome: Predict motor-task functional connectivity from resting-state connectivity (HCP)."""

__version__ = "0.1.0"
