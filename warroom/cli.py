"""`warroom` command line (SPEC §9). Each subcommand translates flags into a call."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from pydantic import SecretStr

from foundation.settings import Settings, SettingsError, load_settings

ROLES = ("viewer", "responder", "ingest", "admin")


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


def _cmd_up(args: argparse.Namespace) -> int:
    from warroom.devstack import up

    if args.demo_faults is not None and not args.demo:
        print("warroom: --demo-faults only applies with --demo", file=sys.stderr)
        return 2
    settings = _settings(args)
    return up(settings, host=args.host, port=args.port, data_dir=args.data_dir, config=args.config, demo=args.demo,
              demo_faults=args.demo_faults != "off")


def _with_topics(settings: Settings) -> Settings:
    # Every process type may start first in a deployment; creating topics is idempotent.
    from foundation.topics import ensure_topics

    asyncio.run(ensure_topics(settings))
    return settings


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import run

    run(_with_topics(_settings(args)))
    return 0


def _cmd_notifier(args: argparse.Namespace) -> int:
    from streams.notifier import run

    run(_with_topics(_settings(args)))
    return 0


def _cmd_projector(args: argparse.Namespace) -> int:
    from foundation.event_loop import run as run_on_event_loop
    from projections.runner import run

    run_on_event_loop(run(_with_topics(_settings(args))))
    return 0


def _cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.app import run

    overrides: dict[str, object] = {}
    if args.host or args.port is not None:
        base = load_settings(args.config).gateway.model_dump()
        if args.host:
            base["host"] = args.host
        if args.port is not None:
            base["port"] = args.port
        overrides["gateway"] = base
    run(_with_topics(_settings(args, **overrides)))
    return 0


def _cmd_token(args: argparse.Namespace) -> int:
    from gateway.auth import mint_token
    from warroom.devstack import secret_for

    settings = _settings(args)
    secret = secret_for(settings, args.data_dir)
    if secret is None:
        print(
            "no JWT secret: set WARROOM_JWT_SECRET, auth.jwt_secret in the config, "
            "or pass --data-dir of a `warroom up` data directory",
            file=sys.stderr,
        )
        return 2
    settings = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"jwt_secret": SecretStr(secret)})}
    )
    roles = args.role or ["viewer"]
    print(mint_token(settings, sub=args.sub, roles=roles, ttl_s=args.ttl))
    return 0


def _cmd_contracts_export(args: argparse.Namespace) -> int:
    from warroom.schemas import export_schemas

    written = export_schemas(Path(args.dir))
    print(f"wrote {len(written)} JSON Schemas to {args.dir}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from warroom.doctor import doctor
    from warroom.history_cli import running_settings

    settings = running_settings(args)
    if args.data_dir is not None:  # and correlation as the worker of a `warroom up --demo` there has it
        from warroom.demo.stack import with_running_demo

        settings = with_running_demo(settings, args.data_dir)

    report = asyncio.run(doctor(settings, args.service))
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0 if all(check["ok"] for check in report["checks"]) else 1


def _cmd_alert_send(args: argparse.Namespace) -> int:
    from warroom.alert_send import (
        AlertSendError,
        bootstrap_for,
        build_alert,
        now,
        pairs,
        send_alert,
    )

    settings = _settings(args)
    try:
        alert = build_alert(settings, service=args.service, name=args.name, severity=args.severity,
                            resolve=args.resolve, labels=pairs(args.label, "label"),
                            annotations=pairs(args.annotation, "annotation"), fingerprint=args.fingerprint,
                            now=now())
        sent = asyncio.run(send_alert(settings, bootstrap_for(settings, args.data_dir), alert))
    except AlertSendError as err:
        print(f"warroom: {err}", file=sys.stderr)
        return 2
    print(json.dumps(sent))
    return 0


def _cmd_eval_petshop(args: argparse.Namespace) -> int:
    import time

    from warroom.petshop.dataset import DatasetError
    from warroom.petshop.evaluate import evaluate, report_json, report_table
    from warroom.servers import ServerError

    if args.limit is not None and args.limit < 1:
        print("warroom: --limit must be at least 1", file=sys.stderr)
        return 2
    began = time.monotonic()
    try:
        results = evaluate(args.dir, limit=args.limit, verbose=args.verbose, keep=args.keep)
    except (DatasetError, ServerError) as err:
        print(f"warroom: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report_json(args.dir, results), indent=2))
    else:
        print(report_table(args.dir, results, time.monotonic() - began))
    return 0


def report_text(report: dict) -> str:
    lines = []
    for check in report["checks"]:
        mark = "ok  " if check["ok"] else "FAIL"
        lines.append(f"[{mark}] {check['name']}: {check['detail']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="warroom", description="Real-time incident response on an event log.")
    parser.add_argument("--config", type=Path, default=None, help="warroom.toml to read (default: $WARROOM_CONFIG or ./warroom.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run everything on the embedded broker and PostgreSQL")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--data-dir", type=Path, default=Path("./data"))
    up.add_argument("--demo", action="store_true",
                    help="also run the demo shop, Prometheus and Alertmanager, so incidents open by themselves")
    up.add_argument("--demo-faults", choices=("on", "off"), default=None,
                    help="with --demo: inject faults on a schedule (default on)")
    up.set_defaults(func=_cmd_up)

    sub.add_parser("worker", help="run the stream processors (Faust worker)").set_defaults(func=_cmd_worker)
    sub.add_parser("projector", help="build the PostgreSQL read models").set_defaults(func=_cmd_projector)
    sub.add_parser("notifier", help="page people as [notify] routes say, recording every attempt").set_defaults(
        func=_cmd_notifier)
    gw = sub.add_parser("gateway", help="serve the HTTP API, SSE and dashboard")
    gw.add_argument("--host", default=None)
    gw.add_argument("--port", type=int, default=None)
    gw.set_defaults(func=_cmd_gateway)

    token = sub.add_parser("token", help="mint a JWT from the configured secret; prints only the token")
    token.add_argument("--role", action="append", choices=ROLES, help="repeatable; default viewer")
    token.add_argument("--sub", default="cli")
    token.add_argument("--ttl", type=int, default=None, help="lifetime in seconds")
    token.add_argument("--data-dir", type=Path, default=None, help="use the secret `warroom up` generated there")
    token.set_defaults(func=_cmd_token)

    contracts = sub.add_parser("contracts", help="wire contracts")
    csub = contracts.add_subparsers(dest="contracts_command", required=True)
    export = csub.add_parser("export", help="write a JSON Schema for every command, event and alert")
    export.add_argument("dir")
    export.set_defaults(func=_cmd_contracts_export)

    doctor = sub.add_parser("doctor", help="check Kafka, PostgreSQL and each source")
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--service", default=None,
                        help="run every source's queries for this service (default: the first SLO's service)")
    doctor.add_argument("--data-dir", type=Path, default=None, help="check the `warroom up` running there")
    doctor.set_defaults(func=_cmd_doctor)

    alert = sub.add_parser("alert", help="alerts, as a producer publishes them")
    asub = alert.add_subparsers(dest="alert_command", required=True)
    send = asub.add_parser("send", help="publish one alert to the alerts topic")
    send.add_argument("--service", required=True)
    send.add_argument("--name", required=True, help="the alertname label")
    send.add_argument("--severity", default=None, help="the severity label (mapped by intake.severity_map)")
    send.add_argument("--resolve", action="store_true", help="send it resolved (ends now)")
    send.add_argument("--label", action="append", metavar="K=V", help="repeatable")
    send.add_argument("--annotation", action="append", metavar="K=V", help="repeatable, e.g. summary=...")
    send.add_argument("--fingerprint", default=None, help="default: derived from the labels")
    send.add_argument("--data-dir", type=Path, default=None, help="publish to the broker `warroom up` runs there")
    send.set_defaults(func=_cmd_alert_send)

    evaluation = sub.add_parser("eval", help="measure root-cause ranking on labelled cases")
    esub = evaluation.add_subparsers(dest="eval_command", required=True)
    petshop = esub.add_parser("petshop", help="every case of a PetShop-format scenario through the real pipeline")
    petshop.add_argument("dir", type=Path, help="a scenario directory: graph.csv, noissue/, train/ and test/")
    petshop.add_argument("--json", action="store_true", help="print the result object (SPEC §14) on stdout")
    petshop.add_argument("--limit", type=int, default=None, help="only the first N cases (train, then test)")
    petshop.add_argument("--verbose", action="store_true", help="print the eval's own settings on stderr")
    petshop.add_argument("--keep", action="store_true", help="keep the work directory (TSDB, logs) and say where")
    petshop.set_defaults(func=_cmd_eval_petshop)

    from warroom.demo.cli import register as register_demo
    from warroom.history_cli import register

    register(sub)  # replay, audit, postmortem
    register_demo(sub)  # demo fault, demo shop
    _accept_config_everywhere(parser)
    return parser


def _accept_config_everywhere(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand, however deep, its own `--config` (`warroom up --config F`
    as well as `warroom --config F up`). Unset there, it leaves the top-level value alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                if "--config" not in command._option_string_actions:
                    command.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                                         help="warroom.toml to read (default: $WARROOM_CONFIG or ./warroom.toml)")
                _accept_config_everywhere(command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except SettingsError as err:
        print(f"warroom: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
