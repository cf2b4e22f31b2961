"""transformers' continuous batching (``init_continuous_batching``, paged attention) against one
left-padded ``model.generate`` call and against one ``generate`` per request, on the CPU, for a
quickstart-shaped Llama (2 layers x 192, random weights): the measurement behind
``qslm serve``'s choice of ``generate`` batching (see qslm/inference/batching.py).

    nice -n 10 python benchmarks/batching_engines.py --requests 32 --max-new-tokens 32

Also checks that the three give the same greedy tokens. Prints machine and versions.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    ContinuousBatchingConfig,
    GenerationConfig,
    LlamaConfig,
)


def until_eos(tokens: object) -> list[int]:
    ids = [int(t) for t in tokens]
    return ids[: ids.index(0) + 1] if 0 in ids else ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformers.set_seed(0)
    config = LlamaConfig(
        vocab_size=512,
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        eos_token_id=0,
        pad_token_id=0,
        bos_token_id=0,
    )
    model = AutoModelForCausalLM.from_config(config).eval()
    n, new = args.requests, args.max_new_tokens
    prompts = [[1 + i % 500, 2, 3, 4, 5] for i in range(n)]
    greedy = GenerationConfig(
        max_new_tokens=new, do_sample=False, eos_token_id=None, pad_token_id=0
    )

    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"threads {args.threads}"
    )
    cb_config = GenerationConfig(
        max_new_tokens=new, do_sample=False, eos_token_id=-1, pad_token_id=0
    )
    manager = model.init_continuous_batching(
        generation_config=cb_config,
        continuous_batching_config=ContinuousBatchingConfig(
            num_blocks=64, page_size=16, max_batch_tokens=256
        ),
    )
    manager.start()
    started = time.perf_counter()
    ids = manager.add_requests(prompts, max_new_tokens=new)
    results = {}
    while len(results) < n:
        r = manager.get_result(timeout=30)
        if r is None:
            raise SystemExit("continuous batching stopped answering")
        if r.is_finished():
            results[r.request_id] = r.generated_tokens
    cb = time.perf_counter() - started
    manager.stop(block=True)
    with torch.inference_mode():
        started = time.perf_counter()
        batch = model.generate(
            torch.tensor(prompts),
            attention_mask=torch.ones(n, 5, dtype=torch.long),
            generation_config=greedy,
        )
        padded = time.perf_counter() - started
        started = time.perf_counter()
        alone = [model.generate(torch.tensor([p]), generation_config=greedy) for p in prompts]
        single = time.perf_counter() - started
    # Compared up to the first EOS (token 0): a lone run stops there, a batch row is padded
    # with it, and continuous batching (EOS off) goes on past it.
    same_cb = sum(until_eos(results[i]) == until_eos(alone[k][0, 5:]) for k, i in enumerate(ids))
    same_batch = sum(until_eos(batch[k, 5:]) == until_eos(alone[k][0, 5:]) for k in range(n))
    tokens = n * new
    print(f"{n} requests x {new} new tokens, greedy:")
    print(
        f"  continuous batching (paged attention): {tokens / cb:.0f} tokens/s, "
        f"{same_cb}/{n} same as alone"
    )
    print(
        f"  one padded generate call:              {tokens / padded:.0f} tokens/s, "
        f"{same_batch}/{n} same"
    )
    print(f"  one generate per request:              {tokens / single:.0f} tokens/s")


if __name__ == "__main__":
    main()
