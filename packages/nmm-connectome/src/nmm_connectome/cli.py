"""`nmm-connectome`: rest FC -> motor-task FC (data, train, predict, eval) and `info`.

Every command is a config dataclass in `nmm_connectome.commands`, read by `nmm_core.config`
(defaults < `--config FILE` < flags); heavy libraries load inside the commands.
"""

from __future__ import annotations

import sys

from nmm_core.cli import base_parser, print_info, run_cli
from nmm_core.config import add_command, config_from_parsed

DESCRIPTION = "Predict motor-task functional connectivity from resting-state connectivity (HCP)."


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    from nmm_connectome import commands as c

    parser, sub = base_parser("nmm-connectome", DESCRIPTION, "nmm-connectome")
    data = sub.add_parser("data", help="make, import and check cohorts of paired FC matrices",
                          description="make, import and check cohorts of paired FC matrices")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    add_command(data_sub, "synthesize", c.SynthesizeConfig, help="write the seeded synthetic cohort")
    add_command(data_sub, "inspect", c.InspectConfig, help="check a cohort and summarise it")
    add_command(data_sub, "build-fc", c.BuildFcConfig,
                help="FC from HCP CIFTI (+ parcellation), parcellated time series or FC files")
    add_command(sub, "train", c.TrainConfig, help="train bridge matching or ridge into a run folder")
    add_command(sub, "predict", c.PredictConfig, help="a trained run's task FC for held-out subjects")
    add_command(sub, "eval", c.EvalConfig,
                help="runs and baselines on the same held-out subjects: report.md/json + PNG")
    ns = parser.parse_args(argv)

    def dispatch() -> None:
        if ns.command == "info":
            print_info("nmm-connectome", ns)
        elif ns.command == "data":
            cls, fn = {"synthesize": (c.SynthesizeConfig, c.run_synthesize),
                       "inspect": (c.InspectConfig, c.run_inspect),
                       "build-fc": (c.BuildFcConfig, c.run_build_fc)}[ns.data_command]
            fn(config_from_parsed(cls, ns))
        else:
            cls, fn = {"train": (c.TrainConfig, c.run_train), "predict": (c.PredictConfig, c.run_predict),
                       "eval": (c.EvalConfig, c.run_eval)}[ns.command]
            fn(config_from_parsed(cls, ns))

    return run_cli(dispatch)


if __name__ == "__main__":
    sys.exit(main())
