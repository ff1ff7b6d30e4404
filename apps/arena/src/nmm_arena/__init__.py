"""nmm-arena: a blind web arena where people judge two models' answers from nmm pair files."""

from nmm_core.exports import lazy_exports

__version__ = "0.1.0"

# Public names (what nmm-bench's arena load benchmark uses), imported on first use.
_EXPORTS: dict[str, str] = {
    "load_catalog": "catalog", "Database": "db", "running": "loopback", "vote_load": "loopback",
    "board_load": "loopback", "kill_cycles": "loopback", "peak_rss_mib": "loopback",
}

__all__ = sorted(_EXPORTS) + ["__version__"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
