#!/usr/bin/env python3
"""torchvision's ImageNet training pipeline, for comparison with wt-data's
(`cargo run --release --example data_throughput -- --imagenet-train DIR --workers N`).

Same work as the Rust example: ImageFolder (PIL decode, convert to RGB), RandomResizedCrop(224,
scale 0.08-1, ratio 3/4-4/3, bilinear), RandomHorizontalFlip, ToTensor, Normalize(ImageNet mean
and std), batches of 64, shuffled, 2 passes over the tree; images/s with 1 and 2 workers.

    python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch torchvision
    /tmp/tv/bin/python benches/reference/torchvision_pipeline.py ../shared/data/imagenette-mini/train

Run it on an otherwise idle machine (no build running): both pipelines use every core they get.
"""

import argparse
import json
import time

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train_dir", help="an ImageFolder tree (class folders of images)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    # The main process only collates; keep its intra-op pool from competing with the workers.
    torch.set_num_threads(1)
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    dataset = datasets.ImageFolder(args.train_dir, transform=transform)
    print(f"torch {torch.__version__}, {len(dataset)} images in {len(dataset.classes)} classes")
    print("pipeline                      workers  images  seconds  images/s")
    results = []
    for workers in args.workers:
        loader = DataLoader(
            dataset,
            batch_size=args.batch,
            shuffle=True,
            num_workers=workers,
            generator=torch.Generator().manual_seed(1),
        )
        start, n = time.perf_counter(), 0
        for _ in range(args.epochs):
            for images, _labels in loader:
                n += images.shape[0]
        seconds = time.perf_counter() - start
        rate = n / seconds
        print(f"torchvision train (b{args.batch:<3})      {workers:>7}  {n:>6}  {seconds:>7.2f}  {rate:>8.0f}")
        results.append({"workers": workers, "images": n, "images_per_s": round(rate, 1)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
