"""Write the offline synthetic talking-face corpus (real mp4 files) for trying the pipeline.

    python scripts/make_synthetic_corpus.py corpus/ --speakers 16 --clips 2 --seed 0
    s2f-preprocess source=avspeech source.csv=corpus/clips.csv \
        source.video_dir=corpus/videos/ face_encoder=dlib output_dir=shards/

Faces are rendered from per-speaker parameters and voices synthesised to match them (see
data/README.md); the same arguments always give the same files.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="directory to write videos/, clips.csv, labels.csv")
    parser.add_argument("--speakers", type=int, default=16, help="identities (default 16)")
    parser.add_argument("--clips", type=int, default=2, help="segments per speaker (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--held-out-clips",
        type=int,
        help="segments per speaker that s2f-preprocess will hold out with --val-fraction",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=0.0,
        help="the source.val_fraction s2f-preprocess will use (with --held-out-clips)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes (default 1; same files for any)"
    )
    parser.add_argument(
        "--sentences", help="a text file of sentences, one a line (default: the packaged list)"
    )
    args = parser.parse_args(argv)
    if args.speakers < 1 or args.clips < 1 or args.workers < 1:
        parser.error("--speakers, --clips and --workers must be at least 1")
    if args.held_out_clips is not None and args.held_out_clips < 1:
        parser.error("--held-out-clips must be at least 1")
    if not 0.0 <= args.val_fraction <= 1.0:
        parser.error("--val-fraction must be in [0, 1]")

    from speech2face.data.synthetic import make_corpus
    from speech2face.errors import S2FError

    try:
        clips = make_corpus(
            args.out_dir,
            args.speakers,
            args.clips,
            args.seed,
            args.workers,
            sentences=args.sentences,
            held_out_clips=args.held_out_clips,
            val_fraction=args.val_fraction,
        )
    except (S2FError, OSError) as error:
        print(f"make_synthetic_corpus: error: {error}", file=sys.stderr)
        return 2
    print(clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
