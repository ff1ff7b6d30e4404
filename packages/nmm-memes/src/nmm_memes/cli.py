"""`nmm-memes`: meme data, TinyLLaVA conversion, train, eval, compete, predict; GILL generate, retrieve."""

from __future__ import annotations

import argparse
import sys

from nmm_core.cli import add_export_command, base_parser, export_from_parsed, print_info, run_cli

DESCRIPTION = "Meme understanding (MemeCap, MemeCraft) with TinyLLaVA and GILL, and a base-vs-fine-tuned competition."


def build_parser() -> argparse.ArgumentParser:
    """The full parser; settings classes are light (no torch), so --help stays instant."""
    from nmm_core.config import add_command
    from nmm_memes.commands import InspectConfig, MemeEvalConfig, MemeTrainConfig, PredictConfig, SynthesizeConfig
    from nmm_memes.compete import CompeteConfig
    from nmm_memes.convert import ConvertConfig
    from nmm_memes.gill.generate import GenerateConfig, RetrieveConfig

    parser, sub = base_parser("nmm-memes", DESCRIPTION, "nmm-memes")
    data = sub.add_parser("data", help="the synthetic meme set and dataset inspection")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    add_command(data_sub, "synthesize", SynthesizeConfig, help="generate the synthetic meme set (MemeCap shape)")
    add_command(data_sub, "inspect", InspectConfig,
                help="counts per split and every skipped record (missing image, filtered caption, bad field)")
    convert = add_command(sub, "convert", ConvertConfig,
                          help="TinyLLaVA_Factory checkpoint -> Llava folder usable as --model OUT")
    convert.add_argument("src", help="TinyLLaVA_Factory checkpoint folder (config.json + weights)")
    convert.add_argument("out", help="new folder to write")
    add_command(sub, "train", MemeTrainConfig,
                help="LoRA fine-tuning: image + title -> meaning (TinyLLaVA); --model gill|tiny-gill: GILL")
    add_command(sub, "eval", MemeEvalConfig, help="captions + ROUGE-1/2/L and BLEU against all references")
    add_command(sub, "compete", CompeteConfig,
                help="base vs fine-tuned on the same memes: blind pairs.jsonl, win rate with CI, ratings")
    add_export_command(sub)
    predict = add_command(sub, "predict", PredictConfig, help="what one meme means, from its image and title")
    predict.add_argument("image", help="meme image file")
    predict.add_argument("title", nargs="?", default="", help="the post title, quoted (GILL does not use it)")
    generate = add_command(sub, "generate", GenerateConfig, help="GILL: an image for a caption, saved as PNG")
    generate.add_argument("caption", help="what the image should show, quoted")
    retrieve = add_command(sub, "retrieve", RetrieveConfig, help="GILL: rank candidate images for a caption")
    retrieve.add_argument("caption", help="what the image should show, quoted")
    retrieve.add_argument("images", nargs="+", help="candidate image files")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command."""
    ns = build_parser().parse_args(argv)

    def dispatch() -> None:
        from nmm_core.config import config_from_parsed
        from nmm_memes import commands as c

        if ns.command == "info":
            print_info("nmm-memes", ns)
        elif ns.command == "data" and ns.data_command == "synthesize":
            c.run_synthesize(config_from_parsed(c.SynthesizeConfig, ns))
        elif ns.command == "data":
            c.run_inspect(config_from_parsed(c.InspectConfig, ns))
        elif ns.command == "convert":
            from nmm_memes.convert import ConvertConfig, run_convert

            run_convert(config_from_parsed(ConvertConfig, ns), ns.src, ns.out)
        elif ns.command == "train":
            print(c.run_meme_train(config_from_parsed(c.MemeTrainConfig, ns)))
        elif ns.command == "eval":
            print(c.run_meme_eval(config_from_parsed(c.MemeEvalConfig, ns)))
        elif ns.command == "compete":
            from nmm_memes.compete import CompeteConfig, run_compete

            print(run_compete(config_from_parsed(CompeteConfig, ns)))
        elif ns.command == "predict":
            c.run_predict(config_from_parsed(c.PredictConfig, ns), ns.image, ns.title)
        elif ns.command == "export":
            print(export_from_parsed(ns))
        elif ns.command in ("generate", "retrieve"):
            from nmm_memes.gill import generate as g

            if ns.command == "generate":
                g.run_generate(config_from_parsed(g.GenerateConfig, ns), ns.caption)
            else:
                g.run_retrieve(config_from_parsed(g.RetrieveConfig, ns), ns.caption, ns.images)

    return run_cli(dispatch)


if __name__ == "__main__":
    sys.exit(main())
