"""The qslm plugin module of qslm-unsloth.

Entry point: ``qslm = "unsloth = qslm_unsloth.plugin"``. The trainer is registered as a
string, so listing plugins imports neither unsloth nor torch.
"""

from qslm.api import hookimpl


@hookimpl
def qslm_register_trainers(register):
    register(
        "unsloth",
        "qslm_unsloth.trainer:UnslothTrainer",
        summary="LoRA/QLoRA fine-tuning through Unsloth's FastLanguageModel (GPU, or its CPU "
        "fallback)",
    )
