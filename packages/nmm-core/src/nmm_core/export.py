"""`export`: an adapter merged into its base as one standalone folder that plain transformers loads.

The folder holds the merged weights (safetensors), config and generation config, the processor
with its chat template and image settings, and a model card (README.md) saying where it came from.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nmm_core.errors import ConfigError, PresetError

EXPORT_HELP = ("merge an adapter into its base: a standalone folder (plain transformers loads Qwen2-VL, "
               "SmolVLM and LLaVA; TinyLLaVA and Moondream need nmm-core's classes)")

EXPORT_MARKER = "nmm_export.json"  # what was merged into what: marks a folder `export` may replace
DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class ExportModelSettings:
    """The base the adapter is merged into (loaded unquantised, whatever it was trained on)."""

    model: str = field(default="", metadata={"help": "preset name, model folder or hub id (empty: the base "
                                                     "the adapter's nmm_adapter.json names)",
                                             "aliases": ("--model",)})
    family: str | None = field(default=None, metadata={"help": "family of a bare hub id"})
    revision: str | None = field(default=None, metadata={"help": "commit of a bare hub id (empty: the "
                                                                 "training run's)"})
    device: str = field(default="auto", metadata={"help": "where to merge: auto | cpu | cuda[:N]"})


@dataclass
class ExportConfig:
    """`export`: merge a LoRA/QLoRA adapter into its base and write a folder transformers loads."""

    adapter: str = field(metadata={"help": "LoRA adapter folder (a train run's adapter/)"})
    out: str = field(metadata={"help": "folder to write (new, empty, or an earlier export)"})
    model: ExportModelSettings = field(default_factory=ExportModelSettings)
    dtype: str = field(default="bfloat16", metadata={"help": f"dtype of the saved weights: {' | '.join(DTYPES)}"})
    report: str | None = field(default=None, metadata={"help": "a compare run folder or its report.json: its "
                                                               "table goes into the model card"})

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class Provenance:
    """What the card says about the adapter: its marker, its training run's config and status."""

    adapter: Path
    marker: dict[str, Any]
    run_config: dict[str, Any]
    run_status: dict[str, Any]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def read_provenance(adapter: str) -> Provenance:
    """The adapter's nmm_adapter.json and, when it sits in a train run folder, that run's config and status."""
    from nmm_core.lora import ADAPTER_MARKER

    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        why = "no such folder" if not folder.exists() else "no adapter_config.json"
        raise PresetError(f"--adapter {folder}: not a LoRA adapter folder ({why})")
    # a trainee of a family's own (GILL) saves parts beside the LoRA weights: a merged transformers
    # folder has nowhere to put them, and dropping them silently would ship another model
    extra = sorted(p.name for p in folder.glob("*.safetensors") if p.name != "adapter_model.safetensors")
    if extra:
        raise ConfigError(f"--adapter {folder}: holds parts beyond a LoRA adapter ({', '.join(extra)}), which a "
                          "merged transformers folder cannot carry; export takes adapters of core's LoRA trainee")
    marker = _read_json(folder / ADAPTER_MARKER) if (folder / ADAPTER_MARKER).is_file() else {}
    run = folder.resolve().parent
    config: dict[str, Any] = {}
    if (run / "config.yaml").is_file():
        try:
            config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            config = {}  # the card then says less; the merge does not need it
    status = _read_json(run / "status.json") if (run / "status.json").is_file() else {}
    return Provenance(folder, marker, config if isinstance(config, dict) else {}, status)


def base_settings(cfg: ExportConfig, prov: Provenance):
    """The `ModelSettings` that load the base unquantised in `cfg.dtype` (a QLoRA adapter merges in
    bf16, as peft recommends, never into 4-bit weights)."""
    from nmm_core.workflows import ModelSettings

    trained = prov.run_config.get("model") or {}
    name = cfg.model.model or prov.marker.get("base") or trained.get("model")
    if not name:
        raise ConfigError(f"--model: not given, and adapter {prov.adapter} names no base (no nmm_adapter.json)")
    family = cfg.model.family or (prov.marker.get("family") if not cfg.model.model else None)
    revision = cfg.model.revision or (trained.get("revision") if trained.get("model") == name else None)
    return ModelSettings(model=name, family=family, revision=revision, dtype=cfg.dtype,
                         device=cfg.model.device, quantization="none")


def loading_text(family, folder: str) -> tuple[str, bool]:
    """How to load an exported `family` model (Python), and whether plain transformers is enough."""
    if ":" not in family.model_class:
        auto = "AutoModelForImageTextToText" if family.chat else "AutoModelForCausalLM"
        return (f"from transformers import AutoProcessor, {auto}\n"
                f"model = {auto}.from_pretrained({folder!r})  # {family.model_class}\n"
                f"processor = AutoProcessor.from_pretrained({folder!r})"), True
    module, cls = family.model_class.split(":")
    return (f"# {cls} is nmm's own class, not one of transformers': loading needs nmm-core installed\n"
            f"# (pip install nmm-core). transformers' Auto classes do not load it as it was trained.\n"
            f"from transformers import AutoProcessor\n"
            f"from {module} import {cls}\n"
            f"model = {cls}.from_pretrained({folder!r})\n"
            f"processor = AutoProcessor.from_pretrained({folder!r})"), False


def carry_image_budget(processor, family, adapter: str | Path) -> dict[str, int]:
    """Set the budget the adapter was trained at (its nmm_adapter.json) on the processor; what was set."""
    from nmm_core.image_budget import adapter_budget

    trained = adapter_budget(adapter) or {}
    budget = {f"{k}_image_tokens": int(v) for k, v in trained.items() if v is not None}
    if budget:
        family.set_image_budget(processor, trained.get("min"), trained.get("max"))
    return budget


def report_table(report: str) -> tuple[str, Path]:
    """The results table and the primary metric's difference from a compare run (folder or report.json)."""
    path = Path(report)
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"--report {report}: no report.json there (give a compare run folder or its report.json)")
    data = _read_json(path)
    results = data.get("results")
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise ConfigError(f"--report {path}: holds no results table (not a report.json that eval/compare wrote)")
    keys = [k for k in results[0] if k not in ("name", "n", "seconds_per_example")]
    lines = ["| model | n | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 2)]
    for r in results:
        cells = [f"{r[k]:.4f}" if isinstance(r.get(k), (int, float)) else str(r.get(k, "")) for k in keys]
        lines.append(f"| {r.get('name', '?')} | {r.get('n', '?')} | " + " | ".join(cells) + " |")
    primary = data.get("primary_metric")
    for name, delta in (data.get("delta_vs_first") or {}).items():
        ci = (data.get("delta_ci95_vs_first") or {}).get(name)
        interval = f" (95% paired-bootstrap interval {ci[0]:+.4f} to {ci[1]:+.4f})" if ci else ""
        lines.append(f"\n{primary}: {name} {delta:+.4f} vs {results[0].get('name')}{interval}")
    return "\n".join(lines), path


def _base_line(source, revision: str | None) -> str:
    if source.preset is not None and source.preset.tiny:
        return f"`{source.name}`, nmm's tiny twin of the {source.family.name} family (random weights, built locally)"
    where = source.location if source.preset is None or source.preset.hub_id is None else source.preset.hub_id
    named = f"`{source.name}` = " if source.name != where else ""
    return f"{named}`{where}` at revision `{revision or 'not recorded'}` ({source.family.name} family)"


def model_card(cfg: ExportConfig, prov: Provenance, loaded, revision: str | None, *,
               budget: dict[str, int], folder_name: str) -> str:
    """README.md: the base and its revision, the adapter and its data, the settings, how to load it,
    and the compare report's table when one is given."""
    from nmm_core import __version__

    source = loaded.source
    trained = prov.run_config
    hub = source.preset.hub_id if source.preset is not None else (
        source.location if not Path(source.location).is_dir() else None)
    front = ["---", "library_name: transformers", "pipeline_tag: image-text-to-text" if loaded.family.chat
             else "pipeline_tag: text-generation", "tags: [nmm, lora, merged]"]
    if hub:
        front.insert(1, f"base_model: {hub}")
    code, plain = loading_text(loaded.family, folder_name)
    quantization = (trained.get("model") or {}).get("quantization")
    if quantization == "auto":
        quantization = source.preset.quantization if source.preset is not None else None
    quantized = quantization in ("4bit", "8bit")
    lines = [*front, "---", "", f"# {folder_name}", "",
             f"A LoRA adapter merged into its base by `nmm export` (nmm-core {__version__}): one folder of "
             f"{cfg.dtype} safetensors weights, config, generation config and processor (with its chat "
             "template), which loads " + ("with plain transformers." if plain else "with nmm-core's model class."),
             "", "## Base", "", f"- base: {_base_line(source, revision)}",
             f"- adapter: `{prov.adapter}`"
             + (f", trained for `{prov.marker['base']}`" if prov.marker.get("base") else ""),
             f"- weights: {cfg.dtype}; the adapter folded into the base's weights"
             + (f"; the adapter was trained on a {quantization} (QLoRA) base and merged into the base loaded "
                "unquantised, as peft recommends" if quantized else "")]
    if prov.run_status:
        done = {k: prov.run_status[k] for k in ("global_step", "train_loss", "examples") if k in prov.run_status}
        if done:
            lines.append("- training run: " + ", ".join(f"{k} {v}" for k, v in done.items()))
    if budget:
        lines.append("- image-token budget (from the adapter, set in the processor): "
                     + ", ".join(f"{k} {v}" for k, v in budget.items()))
    data = trained.get("data") or {}
    lines += ["", "## Data", ""]
    if data:
        lines += [f"- {k}: {data[k]}" for k in ("source", "revision", "split", "limit")
                  if data.get(k) not in (None, "")]
        if trained.get("synthetic"):
            lines.append(f"- synthetic set: {json.dumps(trained['synthetic'], sort_keys=True)}")
        if not data.get("source"):
            lines.append("- source: the command's default data (see the settings below)")
    else:
        lines.append("- not recorded (the adapter is not in a train run folder with its config.yaml)")
    settings = {k: trained[k] for k in ("lora", "train", "synthetic") if k in trained}
    lines += ["", "## Settings", ""]
    if settings:
        lines += ["```yaml", yaml.safe_dump(settings, sort_keys=False).rstrip(), "```"]
    else:
        lines.append("not recorded")
    if cfg.report:
        table, path = report_table(cfg.report)
        lines += ["", "## Evaluation", "", f"From `{path}`:", "", table]
    lines += ["", "## Loading", "", "```python", code, "```", ""]
    return "\n".join(lines)


def _save_merged(cfg: ExportConfig, prov: Provenance, out: Path) -> dict[str, Any]:
    """Load, merge and write everything into `out` (a temporary folder); the provenance written."""
    import torch

    from nmm_core.lora import load_adapter
    from nmm_core.twins import write_marker

    settings = base_settings(cfg, prov)
    loaded = settings.load(padding_side="left")  # batched generation pads on the left
    merged = load_adapter(loaded, prov.adapter, merge=True)
    merged.to(getattr(torch, cfg.dtype))  # a trained projector keeps fp32 master weights until here
    generation = merged.generation_config
    tokenizer = getattr(loaded.processor, "tokenizer", loaded.processor)
    if generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    merged.save_pretrained(out, safe_serialization=True)
    budget = carry_image_budget(loaded.processor, loaded.family, prov.adapter)
    loaded.processor.save_pretrained(out)
    revision = loaded.source.revision
    provenance = {"base": loaded.source.name, "location": loaded.source.location, "revision": revision,
                  "family": loaded.family.name, "adapter": str(prov.adapter.resolve()), "dtype": cfg.dtype,
                  "image_budget": budget, "report": cfg.report}
    (out / EXPORT_MARKER).write_text(json.dumps(provenance, indent=2) + "\n")
    write_marker(out, family=loaded.family.name)  # nmm's own commands load it as this family
    (out / "README.md").write_text(model_card(cfg, prov, loaded, revision, budget=budget,
                                              folder_name=Path(cfg.out).name), encoding="utf-8")
    return provenance


def run_export(cfg: ExportConfig) -> Path:
    """Merge `cfg.adapter` into its base and write `cfg.out` whole (a temporary sibling, then a rename)."""
    from nmm_core.families import get_family
    from nmm_core.files import write_folder
    from nmm_core.model_checks import check_model_source

    prov = read_provenance(cfg.adapter)
    if cfg.report:
        report_table(cfg.report)  # a bad --report fails before the model loads
    settings = base_settings(cfg, prov)
    check_model_source(settings, cfg.adapter)  # an unknown base, an adapter of another family
    out = write_folder(cfg.out, lambda tmp: _save_merged(cfg, prov, tmp), marker=EXPORT_MARKER, flag="--out")
    family = get_family(json.loads((out / EXPORT_MARKER).read_text())["family"])
    code, plain = loading_text(family, str(out))
    print("loads with plain transformers:" if plain else "loading needs nmm-core (this family is nmm's own class):",
          file=sys.stderr)
    print(code, file=sys.stderr)
    return out
