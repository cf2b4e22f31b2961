"""Keeping Hugging Face's own progress bars and chatter out of qslm's progress output."""

from __future__ import annotations

import logging as std_logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hf_quiet() -> Iterator[None]:
    """Within the block, transformers shows no progress bars and logs errors only."""
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    level = logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    # transformers' Trainer imports bitsandbytes when it is installed (qslm-core[all]); on CPUs
    # with AVX512-BF16 its import warns that an optional Hub kernel ("kernels-community") could
    # not load, and then uses its own kernels: noise a user cannot act on
    bnb = std_logging.getLogger("bitsandbytes")
    bnb_level = bnb.level
    bnb.setLevel(std_logging.ERROR)
    try:
        yield
    finally:
        bnb.setLevel(bnb_level)
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()
