"""`nmm-connectome`: rest FC -> motor-task FC, declared as a domain; core's kit makes the command line.

Not a VLM domain (no task), so it has only its own verbs; each is a config dataclass in
`nmm_connectome.commands` (defaults < `--config FILE` < flags); heavy libraries load inside them.
"""

from __future__ import annotations

import sys

from nmm_connectome import commands as c
from nmm_core.domain import Domain, domain_main

CONNECTOME = Domain(
    name="nmm-connectome",
    description="Predict motor-task functional connectivity from resting-state connectivity (HCP).",
    groups={"data": "make, import and check cohorts of paired FC matrices"},
    verbs={
        "data synthesize": (c.SynthesizeConfig, c.run_synthesize, "write the seeded synthetic cohort"),
        "data inspect": (c.InspectConfig, c.run_inspect, "check a cohort and summarise it"),
        "data build-fc": (c.BuildFcConfig, c.run_build_fc,
                          "FC from HCP CIFTI (+ parcellation), parcellated time series or FC files"),
        "train": (c.TrainConfig, c.run_train, "train bridge matching, ridge or SD1.5 into a run folder"),
        "predict": (c.PredictConfig, c.run_predict, "a trained run's task FC for held-out subjects"),
        "eval": (c.EvalConfig, c.run_eval, "runs and baselines on the same held-out subjects: report.md/json + PNG"),
    },
)


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    return domain_main(CONNECTOME, argv)


if __name__ == "__main__":
    sys.exit(main())
