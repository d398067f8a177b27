"""A Faust worker with two tables written from the same input, one the partition shell's way
(`streams.partition`) and one with `table[key] = value`, for the contract test
`tests/integration/test_table_contract.py`.

`python tests/harness/table_contract.py write|read DUMP` with settings from WARROOM_*:
- `write` runs both writers on the `<prefix>.contract-in` topic (value: an int, key: the entry's key);
  each input record sets its key's entry to `Applied(through_offset=<the int>)`;
- `read` declares the same tables but no writer, so what they hold is what recovery from
  their changelogs gave them.
Either way, every record on `<prefix>.contract-probe` makes the worker write both tables, as
`{"shell": {key: offset}, "faust": {key: offset}}`, to DUMP (atomically).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import faust
from faust.types.tuples import Message

from streams.app import create_app, declare_table
from streams.codec import INCIDENT_STATE
from streams.applied import Applied
from streams.partition import Reaction, install
from foundation.settings import load_settings

IN, PROBE = "contract-in", "contract-probe"  # after the topics prefix and a dot


class Write:
    """A step that sets the entry of the record's key to the offset in its value."""

    empty = None
    failure = "could not be written"

    def __init__(self, table) -> None:
        self.table = table

    def read(self, message: Message) -> tuple[str, int]:
        return message.key.decode(), int(message.value)

    @staticmethod
    def through(entry: Applied | None, message: Message) -> int:
        return -1

    @staticmethod
    def react(value: int, entry: Applied | None, message: Message) -> Reaction:
        return Reaction(Applied(through_offset=value))


def main(mode: str, dump: Path) -> None:
    settings = load_settings()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    streams = create_app(settings)
    app, n = streams.app, settings.topics.partitions
    shell_table = declare_table(app, "contract-shell", INCIDENT_STATE, n)
    faust_table = declare_table(app, "contract-faust", INCIDENT_STATE, n)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": n}
    inputs, probes = (app.topic(f"{settings.topics.prefix}.{name}", **raw) for name in (IN, PROBE))

    if mode == "write":
        install(streams, inputs, "shell-writer", Write(shell_table), batch_wait_s=0.01)

        @app.agent(inputs, name="faust-writer")
        async def faust_writer(stream) -> None:
            async for key, value in stream.items():
                faust_table[key.decode()] = Applied(through_offset=int(value))

    @app.agent(probes, name="probe")
    async def probe(stream) -> None:
        async for _ in stream:
            held = {name: {key: entry.through_offset for key, entry in table.items()}
                    for name, table in (("shell", shell_table), ("faust", faust_table))}
            part = dump.with_suffix(".part")
            part.write_text(json.dumps(held))
            os.replace(part, dump)

    worker = faust.Worker(app, loop=loop, loglevel="INFO")
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
