"""`warroom demo fault` and `warroom demo shop` (SPEC §9, §16)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from warroom.demo.faults import KINDS
from warroom.demo.shop import SERVICES


def register(sub: argparse._SubParsersAction) -> None:
    """Add `demo fault` and `demo shop` to the `warroom` parser."""
    demo = sub.add_parser("demo", help="the demo shop `warroom up --demo` runs")
    dsub = demo.add_subparsers(dest="demo_command", required=True)

    fault = dsub.add_parser("fault", help="inject a fault into the running demo shop, or clear one")
    fault.add_argument("--service", required=True, choices=SERVICES)
    fault.add_argument("--kind", required=True, choices=KINDS)
    fault.add_argument("--data-dir", type=Path, default=None,
                       help="data directory of the `warroom up --demo` to reach (default: data_dir of the settings)")
    fault.set_defaults(func=_cmd_fault)

    shop = dsub.add_parser("shop", help="run the demo shop alone: metrics on /metrics, faults on /faults")
    shop.add_argument("--host", default="127.0.0.1")
    shop.add_argument("--port", type=int, default=0, help="default: any free port (printed)")
    shop.add_argument("--seed", type=int, default=0, help="the same seed gives the same traffic")
    shop.add_argument("--faults", choices=("on", "off"), default="on", help="inject faults on a schedule")
    shop.add_argument("--history-file", type=Path, default=None,
                      help="before serving, live through the last hour of normal traffic and write it to this file "
                           "as OpenMetrics (job=\"demo-shop\", this address as instance), for "
                           "`promtool tsdb create-blocks-from openmetrics`")
    shop.set_defaults(func=_cmd_shop)


def _cmd_fault(args: argparse.Namespace) -> int:
    import httpx

    from warroom.demo.stack import NoDemo, running_demo
    from foundation.settings import load_settings

    data_dir = args.data_dir or load_settings(args.config).data_dir
    try:
        shop = running_demo(data_dir)["shop"]
    except (NoDemo, KeyError) as err:
        print(f"warroom: {err}", file=sys.stderr)
        return 2
    try:
        response = httpx.post(f"{shop}/faults", json={"service": args.service, "kind": args.kind},
                              timeout=10, trust_env=False)
    except httpx.HTTPError as err:
        print(f"warroom: the demo shop at {shop} did not answer (is `warroom up --demo` still running?): {err}",
              file=sys.stderr)
        return 1
    if response.status_code != 200:
        detail = response.json().get("detail") if response.headers.get("content-type", "").endswith("json") else ""
        print(f"warroom: the demo shop refused: {detail or response.text}", file=sys.stderr)
        return 2 if response.status_code == 422 else 1
    state = response.json()
    print(json.dumps({"service": args.service, "kind": args.kind, **state["services"][args.service],
                      "next_scheduled": state["next_scheduled"]}))
    return 0


def _cmd_shop(args: argparse.Namespace) -> int:
    from warroom.demo.shop_server import serve

    return serve(args.host, args.port, seed=args.seed, scheduled=args.faults == "on", history_file=args.history_file)
