"""Measure the upsampling grid in a voice model's portraits against the true face crops.

    python scripts/measure_lattice.py demo/runs/voice/checkpoints/last.pt demo/shards/

Draws the portrait of every clip of the split (``val``: the speakers the demo held out) at
the decoder's own size and reads the same speakers' face crops from the shards, resized to
that size; prints, for each, the mean and the largest ``lattice_peaks`` in dB (how far the
mean power spectrum stands above its neighbourhood at the frequencies of the decoder's
stride-2 upsampling). About 0 dB: no grid. Bad input is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a voice checkpoint (RUN/checkpoints/last.pt)")
    parser.add_argument("shards", help="the preprocessed shards (data.root)")
    parser.add_argument("--split", default="val", help="which split's speakers (default: val)")
    parser.add_argument("--max-clips", type=int, default=200, help="at most this many clips")
    args = parser.parse_args(argv)

    from speech2face.audio import SAMPLE_RATE
    from speech2face.data import ShardDataset
    from speech2face.errors import S2FError
    from speech2face.inference import Portraitist
    from speech2face.metrics.lattice import lattice_peaks

    try:
        if args.max_clips < 1:
            raise S2FError(f"--max-clips must be at least 1, got {args.max_clips}")
        portraitist = Portraitist.from_checkpoint(args.checkpoint)
        decoder = portraitist.bundle.face_decoder.config
        size, step = decoder.image_size, decoder.texture_base
        split = ShardDataset(
            args.shards, args.split, train=False, clip_samples=None, with_image=True
        )
        portraits, crops = [], []
        for sample in split:
            portraits.append(portraitist.predict((sample["wav"], SAMPLE_RATE)).portrait)
            crops.append(sample["image"])
            if len(portraits) >= args.max_clips:
                break
        if not portraits:
            raise S2FError(f"{args.shards}: the {args.split} split holds no clips")
    except S2FError as error:
        print(f"measure_lattice: error: {error}", file=sys.stderr)
        return 2
    drawn = torch.stack(portraits).float() / 255  # (N, 3, size, size)
    true = F.interpolate(torch.stack(crops).float() / 255, size=(size, size), mode="area")
    print(
        f"{len(portraits)} clips of {args.split}; decoder upsampling {decoder.upsample!r}, "
        f"{decoder.texture_base} -> {size} px; lattice every {step} bins"
    )
    for name, images in (("portraits", drawn), ("true face crops", true)):
        peaks = lattice_peaks(images, step)
        print(f"{name:16s} mean {peaks.mean():6.2f} dB   largest {peaks.max():6.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
