"""Third-party messages a user cannot act on, silenced one by one at their logger or warning."""

from __future__ import annotations

import logging
import warnings

# (logger name, start of the message): each is dropped from that logger only.
_LOG_NOISE = (
    # bitsandbytes' CPU backend looks for an optional Hub kernel at import; the fallback works
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
    # rouge-score says this each time a scorer is built, through absl
    ("absl", "Using default tokenizer."),
)
# (category, message regex, module regex): passed to warnings.filterwarnings.
_WARNING_NOISE = (
    # peft probes the deprecated property when wrapping a model; nothing for a user to change
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated", r"transformers\.modeling_utils"),
)


class _DropNoise(logging.Filter):
    """Drops records whose (logger name, message start) is in `_LOG_NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.name == name and str(record.msg).startswith(start) for name, start in _LOG_NOISE)


_FILTER = _DropNoise()


def silence_third_party_noise() -> None:
    """Install the filters: on the root logger's handlers (where those loggers propagate) and warnings."""
    # On the handlers, not the loggers: creating `absl`'s logger before absl does would change its class.
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    for category, message, module in _WARNING_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
