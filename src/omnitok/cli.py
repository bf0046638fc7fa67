"""The one command-line entry point: ``omnitok <command> [<sub>] ...``.

Each subcommand lives in the module that owns it; that module exposes
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args: argparse.Namespace) -> int | None``.
Modules are imported only when their command runs, so a missing optional extra only affects that command.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("data", "build"), "omnitok.data.commands", "build a dataset's shards (digits, emoji, speech, video, text, all)"),
    (("data", "info"), "omnitok.data.commands", "list built datasets with counts and sizes"),
    (("data", "show"), "omnitok.data.commands", "write a contact sheet PNG or list transcripts"),
    (("train", "codec"), "omnitok.train.codec", "train an image, video or audio codec from a preset"),
    (("train", "text-codec"), "omnitok.train.text_codec", "train the byte-level BPE text codec"),
    (("train", "lm"), "omnitok.train.lm", "train the unified transformer on token shards"),
    (("train", "diffusion"), "omnitok.train.diffusion", "train a text-to-image diffusion model (pixels or latents)"),
    (("train", "clip"), "omnitok.train.align", "train a CLIP / CLAP alignment model (images, speech <-> text)"),
    (("train", "transfusion"), "omnitok.train.transfusion",
     "train the Transfusion hybrid: next-token text + diffusion on image latents, one transformer"),
    (("eval", "codec"), "omnitok.eval.codec", "evaluate a codec on a held-out split"),
    (("eval", "model"), "omnitok.eval.model", "evaluate the unified model with outside judges"),
    (("eval", "diffusion"), "omnitok.eval.diffusion", "judge a diffusion model: digit accuracy and seconds per image"),
    (("eval", "transfusion"), "omnitok.eval.transfusion",
     "judge a Transfusion model: text -> image accuracy / FID per step count, image -> text accuracy"),
    (("eval", "clip"), "omnitok.eval.clip", "zero-shot digits, emoji / speech retrieval, CLIPScore of a CLIP model"),
    (("encode",), "omnitok.codecs.files", "encode image / video / audio files into code files"),
    (("decode",), "omnitok.codecs.files", "decode code files back into image / video / audio files"),
    (("tokenize",), "omnitok.data.tokenize", "tokenise a dataset into memory-mapped token shards"),
    (("generate",), "omnitok.recipes.generate", "generate any modality from a prompt"),
    (("export", "hf"), "omnitok.train.export_hf", "export the LM as a Hugging Face folder"),
    (("serve",), "omnitok.serve.commands", "serve the model: an OpenAI-compatible HTTP API and a web page"),
    (("quickstart",), "omnitok.quickstart", "build data, train codecs and the model, evaluate, write a report"),
    (("info",), "omnitok.info", "what a model, run, codec, vocabulary or tokens folder holds and was trained with"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnitok", description="Every modality as tokens, one next-token model.")
    parser.add_argument("--debug", action="store_true",
                        help="show the full Python traceback of an error (also: OMNITOK_DEBUG=1)")
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {(): parser.add_subparsers(dest="command")}
    parsers: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for words, module, help_text in COMMANDS:
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                p = groups[words[: depth - 1]].add_parser(prefix[-1], help=f"{prefix[-1]} commands")
                parsers[prefix] = p
                groups[prefix] = p.add_subparsers(dest="_".join(prefix) + "_command")
        sub = groups[words[:-1]].add_parser(words[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module, _words=words)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (e.name == module or module.startswith(e.name + ".")):
                sub.set_defaults(_missing=f"`omnitok {' '.join(words)}` is not built yet ({module} is missing)")
                sub.add_argument("_rest", nargs=argparse.REMAINDER)
                continue
            sub.set_defaults(_missing=f"`omnitok {' '.join(words)}` needs a package that is not installed: {e.name}")
            sub.add_argument("_rest", nargs=argparse.REMAINDER)
            continue
        adder = getattr(mod, "add_arguments_" + "_".join(w.replace("-", "_") for w in words), None)
        adder = adder or mod.add_arguments
        adder(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"omnitok: {args._missing}", file=sys.stderr)
        return 2
    from omnitok._malloc import tune_malloc

    tune_malloc()  # large tensors from the heap, not a fresh mmap per step (see omnitok/_malloc.py)
    mod = importlib.import_module(args._module)
    runner = getattr(mod, "run_" + "_".join(w.replace("-", "_") for w in args._words), None) or mod.run
    debug = bool(args.debug) or os.environ.get("OMNITOK_DEBUG", "") not in ("", "0")
    try:
        code = runner(args)
    except KeyboardInterrupt:
        print("omnitok: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line for the user; the traceback only when asked
        if debug:
            raise
        print(error_line(" ".join(args._words), e), file=sys.stderr)
        return 2 if isinstance(e, USER_ERRORS) else 1
    return int(code or 0)


#: errors a user's input can cause (a bad path, file, value or checkpoint): exit code 2 and no "internal" label
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, LookupError)


def error_line(command: str, e: BaseException) -> str:
    """``omnitok <command>: error: <message>`` on one line; errors that are not the user's say so."""
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, FileNotFoundError) and e.filename:
        msg = f"no such file or folder: {e.filename}"
    if not isinstance(e, USER_ERRORS):
        return (f"omnitok {command}: internal error: {type(e).__name__}: {msg} "
                "(rerun with --debug for the traceback, and please report it)")
    return f"omnitok {command}: error: {msg} (--debug shows the traceback)"


if __name__ == "__main__":
    sys.exit(main())
