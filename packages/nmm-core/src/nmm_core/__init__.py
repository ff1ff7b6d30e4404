"""nmm-core: the shared path from records to report for narrow-domain VLM fine-tuning.

`import nmm_core` is cheap: names are imported from their modules on first use, so code that
only needs metrics or records never loads torch.
"""

from __future__ import annotations

from nmm_core.exports import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # records and data
    "Example": "records", "Problem": "records", "ValidationReport": "records",
    "load_image": "records", "validate": "records",
    "ColumnMap": "data", "load_examples": "data", "split_examples": "data",
    "write_jsonl_dataset": "data",
    # models
    "Family": "families", "get_family": "families", "register_family": "families",
    "ModelPreset": "presets", "get_preset": "presets", "all_presets": "presets",
    "register": "presets",
    "LoadedModel": "models", "load_model": "models", "resolve_source": "models",
    "build_twin": "twins",
    # chat, LoRA, training, evaluation
    "VlmCollator": "chat", "render_prompt": "chat", "IGNORE_INDEX": "chat",
    "LoraSettings": "lora", "apply_lora": "lora", "save_adapter": "lora",
    "load_adapter": "lora",
    "TrainSettings": "train_settings", "train": "train",
    "GenerationSettings": "evaluate", "EvalResult": "evaluate", "evaluate": "evaluate",
    "generate": "evaluate",
    "Task": "task", "short_answer_task": "task",
    # metrics (fixed names)
    "rouge": "metrics", "bleu": "metrics",
    "exact_match": "metrics",
    "normalize_answer": "metrics",
    "Metric": "metric",
    # reports, runs, config, commands
    "write_comparison": "report", "plot_loss": "report",
    "RunDir": "runs", "atomic_write_json": "files", "atomic_write_text": "files",
    "parse_config": "config", "build_parser": "config", "dump_yaml": "config",
    "TrainConfig": "workflows", "EvalConfig": "workflows", "run_train": "workflows",
    "run_eval": "workflows", "run_compare": "workflows", "predict_one": "predict",
    "check_model_source": "model_checks",
    "DataSettings": "workflows", "ModelSettings": "workflows",
    "Domain": "domain", "SyntheticSet": "domain", "domain_main": "domain",
    "DataSource": "sources", "ColumnSource": "sources",
    "build_full_size": "fullsize",
    # Stable Diffusion pieces (the `nmm-core[diffusion]` extra; diffusers loads on first use)
    "SdParts": "diffusion", "load_sd15": "diffusion", "build_tiny_sd": "diffusion",
    "build_sd15_random": "diffusion", "encode_latents": "diffusion", "decode_latents": "diffusion",
    "expand_unet_inputs": "diffusion",
    "Pair": "pairs", "make_pairs": "pairs", "write_pairs": "pairs", "read_pairs": "pairs",
    "win_rate": "ratings", "bootstrap_interval": "ratings", "bradley_terry": "ratings",
    "elo": "ratings",
    # what apps and benchmarks use (tests/workspace/test_walls.py holds them to this list)
    "run_cli": "cli", "config_from_parsed": "config", "Side": "pairs",
    "INCOMPLETE_SUFFIX": "runs", "STATUS_FILE": "runs", "atomic_write_bytes": "files",
    "print_table": "report", "delta_lines": "report", "breakdown_by": "report", "seed_run": "seeds",
    "elo_update": "ratings", "bootstrap_interval_counts": "ratings", "bradley_terry_counts": "ratings",
    "make_shapes_dataset": "testing.shapes", "build_bpe_tokenizer": "testing.tokenizer",
    "qwen2_vl_twin_tokenizer": "families.qwen2_vl", "ModelSource": "models", "reference_config": "fullsize",
    "IMAGE_CACHE_MIB": "chat", "device_pixels_for": "device_pixels", "answer_only_loss": "answer_loss",
    "VisionFeatureCache": "feature_cache", "needs_autocast": "lora", "make_trainer": "train",
    "release_speedups": "feature_cache", "apply_liger": "kernels", "liger_available": "kernels",
    "compile_layers": "kernels", "lazy_exports": "exports",
    # errors
    "NmmError": "errors", "ConfigError": "errors", "DataError": "errors",
    "PresetError": "errors", "DeviceError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
