"""LoRA training throughput: our `train_lora` (packed, and length-grouped) against a plain transformers `Trainer`.

The three variants train the same LoRA (r=16 on q/k/v/o) on the same examples of SmolLM2-135M for one epoch,
each in a fresh subprocess so that its peak RSS is its own:

- `packed`: `train_lora`, several short examples per row with attention kept inside each example;
- `grouped`: `train_lora` without packing, examples batched by length with dynamic padding;
- `trainer`: `transformers.Trainer` + peft with `DataCollatorForSeq2Seq` (padding to the longest in a random
  batch, no grouping), the batch size being the mean number of examples in a `grouped` micro-batch.

The data are short classification examples (dish → cuisine, built in) and a few long ones (a menu to summarise),
the mix a nightly tagging task sees. Tokens/s counts real tokens (prompt + response, no padding) over the time
of the training loop, and the ratios ours/Trainer are the result (target >= 1.0, higher with packing).

    .venv/bin/python bench/train.py --out bench/results/train.json
    .venv/bin/python bench/train.py --short 240 --long 12 --batch-tokens 1024   # a longer run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import common  # before lorag: the repository on sys.path, packaged models only

from lorag.core import models
from lorag.finetune.tasks import Lora, Training
from lorag.finetune.types import Example

TARGET_RATIO = 1.0
VARIANTS = ("trainer", "packed", "grouped")
SYSTEM = "Classify the dish by cuisine. Reply with one label: italian, thai, indian, mexican, japanese or french."
DISHES = {
    "italian": ["margherita pizza", "spaghetti carbonara", "lasagne", "risotto alla milanese", "tiramisu",
                "osso buco", "penne arrabbiata", "focaccia", "gnocchi with pesto", "panna cotta"],
    "thai": ["pad thai", "green curry", "tom yum soup", "som tam", "massaman curry", "khao pad",
             "pad kra pao", "mango sticky rice", "larb gai", "tom kha gai"],
    "indian": ["butter chicken", "palak paneer", "chana masala", "lamb biryani", "masala dosa",
               "rogan josh", "aloo gobi", "dal makhani", "samosa", "gulab jamun"],
    "mexican": ["tacos al pastor", "chicken enchiladas", "guacamole", "chiles rellenos", "pozole",
                "tamales", "churros", "carnitas", "mole poblano", "quesadilla"],
    "japanese": ["salmon nigiri", "tonkotsu ramen", "chicken katsu", "miso soup", "okonomiyaki",
                 "tempura prawns", "beef sukiyaki", "onigiri", "takoyaki", "matcha mochi"],
    "french": ["coq au vin", "beef bourguignon", "ratatouille", "crème brûlée", "quiche lorraine",
               "bouillabaisse", "croque monsieur", "duck confit", "tarte tatin", "soupe à l'oignon"],
}
STYLES = ["", "spicy ", "vegetarian ", "homemade ", "grilled ", "classic ", "mini ", "family-size "]


def build_examples(short: int, long: int) -> list[Example]:
    """`short` one-dish classification examples, then `long` menus of 30 dishes to summarise, in a fixed order."""
    pairs = [(style + dish, label) for style in STYLES for label, dishes in DISHES.items() for dish in dishes]
    examples = [Example(({"role": "system", "content": SYSTEM}, {"role": "user", "content": dish}), label,
                        f"short-{index}") for index, (dish, label) in enumerate(pairs[:short])]
    for index in range(long):
        menu = [pairs[(index * 7 + k * 11) % len(pairs)] for k in range(30)]
        text = "Summarise this menu in one sentence:\n" + "\n".join(f"- {dish} ({label})" for dish, label in menu)
        cuisines = sorted({label for _dish, label in menu})
        examples.append(Example(({"role": "user", "content": text},),
                                f"A varied menu of {', '.join(cuisines)} dishes, from {menu[0][0]} to {menu[-1][0]}.",
                                f"long-{index}"))
    return examples


def run_ours(base_dir: str, examples: list[Example], training: Training, lora: Lora) -> dict[str, Any]:
    from lorag.finetune.train import train_lora

    with tempfile.TemporaryDirectory(prefix="lorag-bench-train-") as out:
        result = train_lora(base_dir, examples, lora=lora, training=training, out_dir=Path(out), progress=False)
    return {"tokens": result.tokens, "seconds": result.seconds, "tokens_per_s": result.tokens_per_s,
            "steps": result.steps, "mean_loss": round(sum(result.losses) / len(result.losses), 4),
            "peak_rss_mb": common.peak_rss_mb()}


def run_trainer(base_dir: str, examples: list[Example], training: Training, lora: Lora,
                batch_size: int) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from lorag.finetune.train import tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    rows = [dict(zip(("input_ids", "labels"), tokenize_example(tokenizer, example), strict=True))
            for example in examples]
    dataset = [{**row, "attention_mask": [1] * len(row["input_ids"])} for row in rows]
    torch.manual_seed(training.seed)
    base = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                            target_modules=list(lora.target_modules), task_type="CAUSAL_LM"))
    collator = CountingCollator(DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    with tempfile.TemporaryDirectory(prefix="lorag-bench-trainer-") as out:
        arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=batch_size,
                                      gradient_accumulation_steps=training.grad_accum,
                                      num_train_epochs=training.epochs, learning_rate=training.learning_rate,
                                      warmup_steps=training.warmup_ratio, max_grad_norm=1.0, use_cpu=True,
                                      save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=10,
                                      seed=training.seed, dataloader_num_workers=0, remove_unused_columns=False)
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset, data_collator=collator)
        output = trainer.train()
    seconds = output.metrics["train_runtime"]
    return {"tokens": collator.real, "seconds": round(seconds, 3), "tokens_per_s": round(collator.real / seconds, 2),
            "steps": output.global_step, "mean_loss": round(output.training_loss, 4),
            "padding_fraction": round(1 - collator.real / collator.slots, 3), "batch_size": batch_size,
            "peak_rss_mb": common.peak_rss_mb()}


class CountingCollator:
    """DataCollatorForSeq2Seq, counting the real tokens and the padded slots of the batches it makes."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.real, self.slots = inner, 0, 0

    def __call__(self, features: list[dict[str, Any]]) -> Any:
        batch = self.inner(features)
        self.real += int(batch["attention_mask"].sum())
        self.slots += batch["input_ids"].numel()
        return batch


def plan(examples: list[Example], base_dir: str, training: Training) -> dict[str, Any]:
    """What the data look like and how our batching lays them out (same plan as train_lora's first epoch)."""
    from transformers import AutoTokenizer

    from lorag.finetune.train import plan_micro_batches, tokenize_example

    tokenizer = AutoTokenizer.from_pretrained(base_dir, local_files_only=True)
    lengths = [len(tokenize_example(tokenizer, example)[0]) for example in examples]
    layout = {}
    for packing in (True, False):
        batches = plan_micro_batches(lengths, training.model_copy(update={"packing": packing}), 0)
        slots = sum(len(batch) * max(sum(lengths[i] for i in row) for row in batch) for batch in batches)
        layout["packed" if packing else "grouped"] = {"micro_batches": len(batches),
                                                      "padding_fraction": round(1 - sum(lengths) / slots, 3)}
    return {"lengths": lengths, "layout": layout,
            "trainer_batch_size": max(1, round(len(examples) / layout["grouped"]["micro_batches"]))}


def child(args: argparse.Namespace) -> None:
    base_dir = models.provision("packaged:smollm2-135m-instruct", args.models).location
    examples = build_examples(args.short, args.long)
    training = Training(epochs=args.epochs, batch_tokens=args.batch_tokens, max_seq_len=1024,
                        packing=args.variant == "packed", learning_rate=2e-4)
    if args.variant == "trainer":
        result = run_trainer(base_dir, examples, training, Lora(), args.trainer_batch_size)
    else:
        result = run_ours(base_dir, examples, training, Lora())
    # The machine is shared: the load while this variant ran says how far to trust its figure.
    print(json.dumps({**result, "load_average": round(os.getloadavg()[0], 2)}))


def spawn(variant: str, args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--variant", variant, "--short", str(args.short), "--long", str(args.long),
               "--epochs", str(args.epochs), "--batch-tokens", str(args.batch_tokens), "--models", str(args.models),
               "--trainer-batch-size", str(batch_size)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarise(args: argparse.Namespace, layout: dict[str, Any], variants: dict[str, dict[str, Any]],
              load_before: float) -> dict[str, Any]:
    for name in ("packed", "grouped"):
        variants[name]["padding_fraction"] = layout["layout"][name]["padding_fraction"]
    lengths = layout["lengths"]
    trainer_rate = variants["trainer"]["tokens_per_s"]
    result = {
        "benchmark": "train",
        "model": "packaged:smollm2-135m-instruct (float32, CPU)",
        "lora": Lora().model_dump(),
        "data": {"examples": len(lengths), "short": args.short, "long": args.long, "tokens": sum(lengths),
                 "mean_tokens": round(sum(lengths) / len(lengths), 1), "max_tokens": max(lengths),
                 "epochs": args.epochs, "batch_tokens": args.batch_tokens},
        "variants": variants,
        "ratio_packed_to_trainer": round(variants["packed"]["tokens_per_s"] / trainer_rate, 3),
        "ratio_grouped_to_trainer": round(variants["grouped"]["tokens_per_s"] / trainer_rate, 3),
        "ratio_rss_packed_to_trainer": round(variants["packed"]["peak_rss_mb"] / variants["trainer"]["peak_rss_mb"], 3),
        "target_ratio": TARGET_RATIO,
        "machine": {**common.machine(), "load_average_before": round(load_before, 2),
                    "load_average_after": round(os.getloadavg()[0], 2)},
    }
    result["meets_target"] = min(result["ratio_packed_to_trainer"], result["ratio_grouped_to_trainer"]) >= TARGET_RATIO
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=60, help="short classification examples (at most 480)")
    parser.add_argument("--long", type=int, default=3, help="long menu-summary examples (~400 tokens each)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-tokens", type=int, default=512, help="Training.batch_tokens for our variants")
    parser.add_argument("--models", type=Path, default=common.MODELS)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # one variant, in a subprocess
    parser.add_argument("--trainer-batch-size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return

    base_dir = models.provision("packaged:smollm2-135m-instruct", args.models).location
    examples = build_examples(args.short, args.long)
    layout = plan(examples, base_dir, Training(batch_tokens=args.batch_tokens, max_seq_len=1024))
    load_before = os.getloadavg()[0]
    variants = {variant: spawn(variant, args, layout["trainer_batch_size"]) for variant in VARIANTS}
    result = summarise(args, layout, variants, load_before)
    common.emit(result, args.out)


if __name__ == "__main__":
    main()
