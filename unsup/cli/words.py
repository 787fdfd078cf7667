"""``unsup words RUN``: nearest neighbours and analogies of a run's word vectors, and their export."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from unsup.cli.options import HelpFormatter, run_data_args, run_parent
from unsup.errors import ConfigError
from unsup.train import load_run, select_device


def add_parser(sub: Any) -> None:
    w = sub.add_parser("words", parents=[run_parent()],
                       help="query a word2vec run: nearest neighbours, analogies, export",
                       formatter_class=HelpFormatter, description="Answer queries with the word vectors of a "
                       "word2vec run by cosine similarity, and export them in word2vec's text "
                       "format. The vocabulary is rebuilt from the run's training data.",
                       epilog="examples:\n  unsup words runs/w2v --neighbours god,king,water\n"
                       "  unsup words runs/w2v --analogy man:king::woman --analogy son:father::daughter\n"
                       "  unsup words runs/w2v --export vectors.txt")
    w.add_argument("run", metavar="RUN")
    w.add_argument("--neighbours", default="", metavar="WORDS",
                   help="comma-separated words whose nearest neighbours to print")
    w.add_argument("--analogy", action="append", default=[], metavar="A:B::C",
                   help="A is to B as C is to ? (the words nearest B - A + C); repeatable")
    w.add_argument("--k", type=int, default=8, help="answers per query (default: 8)")
    w.add_argument("--export", default=None, metavar="FILE", help="write the vectors (word2vec text format)")
    w.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_words(args: argparse.Namespace) -> int:
    """``unsup words RUN``: neighbours and analogies of a word2vec run's vectors."""
    if args.k < 1:
        raise ConfigError(f"--k must be >= 1, got {args.k}")
    model, meta = load_run(args.run, args.checkpoint, device=select_device(args.device))
    if not model.embeds_words:
        raise ConfigError(f"unsup words needs a run of word vectors (word2vec); {args.run} holds "
                          f"{meta['model']}")
    vocab = run_data_args(args, meta).load("train").vocab
    index = {word: i for i, word in enumerate(vocab)}

    def lookup(word: str) -> int:
        if word.lower() not in index:
            raise ConfigError(f"{word!r} is not in the run's vocabulary of {len(vocab)} words (those "
                              f"seen min_count times in the training text)")
        return index[word.lower()]

    def named(answers: list[tuple[int, float]]) -> list[list]:
        return [[vocab[i], round(sim, 4)] for i, sim in answers]

    result: dict[str, Any] = {"run": str(args.run), "vocabulary": len(vocab), "neighbours": {},
                              "analogies": {}}
    for word in filter(None, (w.strip() for w in args.neighbours.split(","))):
        result["neighbours"][word] = named(model.neighbours(lookup(word), args.k))
    for query in args.analogy:
        parts = query.replace("::", ":").split(":")
        if len(parts) != 3:
            raise ConfigError(f"--analogy takes A:B::C (A is to B as C is to ?), got {query!r}")
        result["analogies"][query] = named(model.analogy(*map(lookup, parts), k=args.k))
    if args.export:
        model.export(vocab, args.export)
        print(f"wrote {args.export}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    for word, answers in result["neighbours"].items():
        print(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in answers))
    for query, answers in result["analogies"].items():
        print(f"{query}: " + ", ".join(f"{w} ({s:.2f})" for w, s in answers))
    return 0
