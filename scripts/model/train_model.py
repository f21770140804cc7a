"""Fine-tune the top of the packaged MiniLM encoder into a sentiment classifier.

Reproducible (fixed seeds, fixed held-out split). Only the top --top-layers
encoder layers, the pooler and a new classifier head are trained; the bottom
layers stay frozen, so their outputs are computed once and cached, which is
what makes this practical on 2 CPU cores. The trained part is written as one
small safetensors file (committed); `make model` adds it to the packaged
encoder to form a standard BertForSequenceClassification folder.

    python -m scripts.model.train_model            # ~5-10 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertForSequenceClassification
from transformers.masking_utils import create_bidirectional_mask

from scripts.model.assemble import LABELS
from scripts.model.model_assets import CACHE, ROOT, extract_encoder, load_reviews, split

DEFAULT_OUT = ROOT / "model_parts" / "trained_top.safetensors"


def batches_by_length(tok, examples, max_len: int, batch: int):
    """Tokenize and group into length-sorted batches (little padding)."""
    enc = tok([e.text for e in examples], truncation=True, max_length=max_len)
    order = sorted(range(len(examples)), key=lambda i: len(enc["input_ids"][i]))
    out = []
    for start in range(0, len(order), batch):
        idx = order[start:start + batch]
        padded = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx]}, return_tensors="pt")
        labels = torch.tensor([examples[i].label for i in idx])
        out.append((padded["input_ids"], padded["attention_mask"], labels))
    return out


@torch.no_grad()
def frozen_features(model, batches, n_frozen: int):
    """Hidden states after the frozen bottom layers, one tensor per batch."""
    model.eval()
    feats = []
    for ids, mask, labels in batches:
        out = model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        feats.append((out.hidden_states[n_frozen].clone(), mask, labels))
    return feats


def top_forward(model, hidden, mask, n_frozen: int):
    attn = create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
    for layer in model.bert.encoder.layer[n_frozen:]:
        hidden = layer(hidden, attention_mask=attn)
    pooled = model.bert.pooler(hidden)
    return model.classifier(model.dropout(pooled))


def accuracy(model, feats, n_frozen: int) -> float:
    model.eval()
    right = total = 0
    with torch.inference_mode():
        for hidden, mask, labels in feats:
            pred = top_forward(model, hidden, mask, n_frozen).argmax(-1)
            right += int((pred == labels).sum())
            total += len(labels)
    return right / total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top-layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    enc_dir = extract_encoder(CACHE / "encoder")
    tok = AutoTokenizer.from_pretrained(enc_dir)
    model = BertForSequenceClassification.from_pretrained(
        enc_dir, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
    )
    n_layers = model.config.num_hidden_layers
    n_frozen = n_layers - args.top_layers
    train, held = split(load_reviews())
    print(f"train={len(train)} held_out={len(held)} frozen_layers={n_frozen} trained_layers={args.top_layers}")

    train_feats = frozen_features(model, batches_by_length(tok, train, args.max_len, args.batch), n_frozen)
    held_feats = frozen_features(model, batches_by_length(tok, held, args.max_len, 128), n_frozen)
    print(f"cached frozen features in {time.perf_counter() - t0:.0f}s", flush=True)

    trainable = [p for name, p in model.named_parameters()
                 if name.startswith(("classifier.", "bert.pooler."))
                 or any(name.startswith(f"bert.encoder.layer.{i}.") for i in range(n_frozen, n_layers))]
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    steps = args.epochs * len(train_feats)
    def warmup_then_decay(step: int) -> float:
        return min(1.0, (step + 1) / (0.06 * steps)) * max(0.0, 1 - step / steps)

    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_then_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        order = list(range(len(train_feats)))
        random.shuffle(order)
        total = 0.0
        for i in order:
            hidden, mask, labels = train_feats[i]
            loss = loss_fn(top_forward(model, hidden, mask, n_frozen), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
        print(f"epoch {epoch + 1}/{args.epochs} loss={total / len(order):.4f} "
              f"held_out_acc={accuracy(model, held_feats, n_frozen):.4f} "
              f"t={time.perf_counter() - t0:.0f}s", flush=True)

    state = {name: p.detach().contiguous() for name, p in model.named_parameters() if any(p is q for q in trainable)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"trained_layers": json.dumps(list(range(n_frozen, n_layers))), "labels": json.dumps(LABELS),
            "seed": str(args.seed), "epochs": str(args.epochs), "lr": str(args.lr), "max_len": str(args.max_len)}
    save_file(state, str(args.out), metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 2**20:.1f} MiB, {len(state)} tensors)")


if __name__ == "__main__":
    main()
