"""`nmm-charts`: chart question answering: data, train, eval, compare, predict."""

from __future__ import annotations

import argparse
import sys

from nmm_core.cli import add_export_command, base_parser, export_from_parsed, print_info, run_cli

DESCRIPTION = "Chart question answering (ChartQA, PJN_CHARTS) with Qwen2-VL-2B, SmolVLM and Moondream2."


def build_parser() -> argparse.ArgumentParser:
    """The full parser; settings classes are light (no torch), so --help stays instant."""
    from nmm_charts.commands import (
        ChartEvalConfig,
        ChartTrainConfig,
        InspectConfig,
        PredictConfig,
        SynthesizeConfig,
    )
    from nmm_core.config import add_command

    parser, sub = base_parser("nmm-charts", DESCRIPTION, "nmm-charts")
    data = sub.add_parser("data", help="the synthetic chart set and dataset inspection")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    add_command(data_sub, "synthesize", SynthesizeConfig,
                help="generate the synthetic chart set (PJN_CHARTS shape)")
    add_command(data_sub, "inspect", InspectConfig,
                help="counts, answer-type mix and a sample grid of a chart source")
    for name, cls, text in (
        ("train", ChartTrainConfig, "LoRA fine-tuning (one epoch by default) into a run folder"),
        ("eval", ChartEvalConfig, "predictions + relaxed accuracy, exact match, ROUGE-1/L, s/answer"),
        ("compare", ChartEvalConfig, "base vs merged fine-tuned adapter on the same examples"),
    ):
        add_command(sub, name, cls, help=text)
    add_export_command(sub)
    predict = add_command(sub, "predict", PredictConfig, help="answer one question about one chart")
    predict.add_argument("image", help="chart image file")
    predict.add_argument("question", help="the question, quoted")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    ns = build_parser().parse_args(argv)

    def dispatch() -> None:
        from nmm_charts import commands as c
        from nmm_core.config import config_from_parsed

        if ns.command == "info":
            print_info("nmm-charts", ns)
        elif ns.command == "data" and ns.data_command == "synthesize":
            c.run_synthesize(config_from_parsed(c.SynthesizeConfig, ns))
        elif ns.command == "data":
            c.run_inspect(config_from_parsed(c.InspectConfig, ns))
        elif ns.command == "train":
            print(c.run_chart_train(config_from_parsed(c.ChartTrainConfig, ns)))
        elif ns.command == "eval":
            print(c.run_chart_eval(config_from_parsed(c.ChartEvalConfig, ns)))
        elif ns.command == "compare":
            print(c.run_chart_compare(config_from_parsed(c.ChartEvalConfig, ns)))
        elif ns.command == "predict":
            c.run_predict(config_from_parsed(c.PredictConfig, ns), ns.image, ns.question)
        elif ns.command == "export":
            print(export_from_parsed(ns))

    return run_cli(dispatch)


if __name__ == "__main__":
    sys.exit(main())
