"""`warroom replay`, `warroom audit ID` and `warroom postmortem ID` (SPEC §9).

`audit` and `postmortem` read the incident's events from Kafka directly (the partition
its id hashes to), so they need no read model and do not trust one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from uuid import UUID

from foundation.settings import Settings, load_settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the three subcommands to the `warroom` parser."""
    up_data = {"type": Path, "default": None, "help": "use the broker and database of the `warroom up` running there"}
    replay = sub.add_parser("replay", help="rebuild every read model from the log, verify it and switch to it")
    replay.add_argument("--verify-only", action="store_true",
                        help="rebuild and compare with the live schema, but do not switch")
    replay.add_argument("--drop-old", action="store_true",
                        help="after switching, drop the schemas earlier switches kept")
    replay.add_argument("--drop-old-only", action="store_true",
                        help="only drop the schemas earlier switches kept; rebuild nothing")
    replay.add_argument("--jobs", type=int, default=None, help="processes rebuilding in parallel (default: cores)")
    replay.add_argument("--keep", action="store_true", help="keep the rebuilt schema when it is not switched to")
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.add_argument("--quiet", action="store_true", help="no progress line")
    replay.add_argument("--data-dir", **up_data)
    replay.set_defaults(func=_cmd_replay)

    audit = sub.add_parser("audit", help="check an incident's hash chain, reading its events from Kafka")
    audit.add_argument("incident", type=UUID)
    audit.add_argument("--verify", action="store_true", help="print only the verdict (JSON)")
    audit.add_argument("--data-dir", **up_data)
    audit.set_defaults(func=_cmd_audit)

    postmortem = sub.add_parser("postmortem", help="write an incident's postmortem from its events in Kafka")
    postmortem.add_argument("incident", type=UUID)
    postmortem.add_argument("--format", choices=("md", "json"), default="md")
    postmortem.add_argument("-o", "--output", type=Path, default=None,
                            help="write to this file (default: stdout); Markdown gets its charts and service graph "
                                 "as SVG files beside it (NAME-1.svg…, NAME-graph.svg)")
    postmortem.add_argument("--data-dir", **up_data)
    postmortem.set_defaults(func=_cmd_postmortem)


def running_settings(args: argparse.Namespace) -> Settings:
    """Settings from the config and environment; with --data-dir, the broker and the
    database of the `warroom up` running there (its stack.json)."""
    from warroom.devstack import stack_settings

    settings = load_settings(getattr(args, "config", None))
    if getattr(args, "data_dir", None) is None:
        return settings
    return stack_settings(settings, args.data_dir)


# --- replay -------------------------------------------------------------------------


def _cmd_replay(args: argparse.Namespace) -> int:
    from projections.replay.run import ReplayError, drop_old_schemas, replay
    from foundation.event_loop import tune_gc
    from warroom.progress import ProgressLine

    settings = running_settings(args)
    if args.drop_old_only:
        dropped = asyncio.run(drop_old_schemas(settings))
        print(json.dumps({"dropped": dropped}) if args.json else
              ("dropped " + ", ".join(dropped) if dropped else "no old schema to drop"))
        return 0
    tune_gc()
    progress = None if args.quiet else ProgressLine("replay")
    try:
        outcome = asyncio.run(replay(settings, verify_only=args.verify_only, drop_old=args.drop_old,
                                     jobs=args.jobs, keep=args.keep, progress=progress))
    except ReplayError as err:
        print(f"warroom replay: {err}", file=sys.stderr)
        return 2
    finally:
        if progress is not None:
            progress.close()
    summary = {
        "live": outcome.live, "switched": outcome.switched, "old_schema": outcome.old,
        "rebuilt_schema": outcome.rebuilt, "kept": args.keep and not outcome.switched,
        "valid": outcome.valid, "mismatches": [str(m) for m in outcome.mismatches],
        "live_differences": None if outcome.live_differences is None else [str(m) for m in outcome.live_differences],
        "records": outcome.records, "applied": outcome.applied, "repeated": outcome.repeated,
        "unreadable": outcome.unreadable, "jobs": outcome.jobs,
        "rebuild_seconds": round(outcome.rebuild_seconds, 3), "events_per_s": round(outcome.rate, 1),
        "total_seconds": round(outcome.total_seconds, 3), "dropped": outcome.dropped,
    }
    print(json.dumps(summary, indent=2) if args.json else _replay_text(summary, args.verify_only))
    if not outcome.valid or outcome.live_differences:
        return 1
    return 0


def _replay_text(s: dict, verify_only: bool) -> str:
    lines = [f"rebuilt {s['records']:,} records ({s['applied']:,} events, {s['repeated']} repeats, "
             f"{s['unreadable']} unreadable) in {s['rebuild_seconds']}s: {s['events_per_s']:,.0f} records/s "
             f"with {s['jobs']} process(es)"]
    if s["mismatches"]:
        lines.append("VERIFICATION FAILED, the live schema is untouched:")
        lines += [f"  {m}" for m in s["mismatches"]]
    else:
        lines.append("verified: every table's row count and checksum equal an independent fold of the log")
    if verify_only and s["live_differences"] is not None:
        if s["live_differences"]:
            lines.append(f"the live schema {s['live']} DIFFERS from the rebuild:")
            lines += [f"  {m}" for m in s["live_differences"]]
        else:
            lines.append(f"the live schema {s['live']} equals the rebuild table by table")
    if s["switched"]:
        lines.append(f"switched: {s['live']} is the rebuilt schema; the previous one is kept as {s['old_schema']}"
                     if s["old_schema"] else f"{s['live']} created from the log")
    if s["dropped"]:
        lines.append("dropped " + ", ".join(s["dropped"]))
    if s["kept"]:
        lines.append(f"kept the rebuilt schema as {s['rebuilt_schema']}")
    return "\n".join(lines)


# --- audit and postmortem -------------------------------------------------------------


async def _stored(settings: Settings, incident: UUID) -> list[bytes]:
    from projections.replay.log_reader import read_incident

    return [record.value for record in await read_incident(settings, incident)]


def _cmd_audit(args: argparse.Namespace) -> int:
    from contracts.events import EventEnvelope
    from projections.history.audit import audit_records

    values = asyncio.run(_stored(running_settings(args), args.incident))
    if not values:
        print(f"warroom audit: no events of incident {args.incident} in the log", file=sys.stderr)
        return 2
    result = audit_records(values)
    if args.verify:
        print(json.dumps(result.to_json()))
    else:
        for value in values:
            try:
                e = EventEnvelope.model_validate_json(value)
            except ValueError:
                print("  ?  (a record that is not a valid event)")
                continue
            print(f"{e.version:>4}  {e.recorded_at.isoformat()}  {e.type:<27} {e.actor.kind.value}:{e.actor.id:<16} "
                  f"{e.hash[:16]}")
        verdict = (f"valid: {result.events} events, hash chain intact" if result.valid
                   else f"INVALID at version {result.first_bad_version}: {result.problem}")
        print(verdict)
    return 0 if result.valid else 1


def _cmd_postmortem(args: argparse.Namespace) -> int:
    from contracts.events import EventEnvelope
    from projections.history.postmortem import build, to_json
    from projections.history.postmortem_figures import write
    from projections.history.postmortem_markdown import render

    values = asyncio.run(_stored(running_settings(args), args.incident))
    if not values:
        print(f"warroom postmortem: no events of incident {args.incident} in the log", file=sys.stderr)
        return 2
    try:
        document = build([EventEnvelope.model_validate_json(value) for value in values])
    except ValueError as err:
        print(f"warroom postmortem: {err} (run `warroom audit {args.incident}`)", file=sys.stderr)
        return 1
    if args.format == "md" and args.output is not None:
        # The charts and the service graph as SVG files beside the document, linked from it.
        written = write(document, args.output)
        print(f"wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
        return 0
    text = (json.dumps(to_json(document), indent=2, ensure_ascii=False) + "\n" if args.format == "json"
            else render(document))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
