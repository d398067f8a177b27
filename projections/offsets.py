"""Where each projection has read up to, per topic partition: the truth for restarts.

Kafka's committed offsets are only informational; these rows are written in the
same transaction as the read models they cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from projections.rows import qualified

# The table's DDL, applied by `projections.schema`'s numbered migrations (never edited once applied).
# Migration 1.
CREATE = """
CREATE TABLE IF NOT EXISTS {s}.projection_offsets (
    projection text NOT NULL,
    topic text NOT NULL,
    partition int NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);
"""

SELECT = """
SELECT partition, next_offset FROM {s}.projection_offsets
WHERE projection = $1 AND topic = $2 AND partition = ANY($3::int[])
"""

SELECT_TOPIC = """
SELECT partition, next_offset FROM {s}.projection_offsets WHERE projection = $1 AND topic = $2
"""

# GREATEST: a projector that lost its partitions mid-batch must not move the new owner back.
SAVE = """
INSERT INTO {s}.projection_offsets (projection, topic, partition, next_offset)
SELECT $1, topic, partition, next_offset
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS o(topic, partition, next_offset)
ON CONFLICT (projection, topic, partition) DO UPDATE
SET next_offset = greatest(projection_offsets.next_offset, EXCLUDED.next_offset)
"""


async def load(
    conn: asyncpg.Connection, schema: str, projection: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The next offset to read for each of `partitions` that has one recorded."""
    rows = await conn.fetch(qualified(schema, SELECT), projection, topic, list(partitions))
    return {r["partition"]: r["next_offset"] for r in rows}


async def load_topic(conn: asyncpg.Connection, schema: str, projection: str, topic: str) -> dict[int, int]:
    """The next offset to read for every partition of `topic` that has one recorded."""
    rows = await conn.fetch(qualified(schema, SELECT_TOPIC), projection, topic)
    return {r["partition"]: r["next_offset"] for r in rows}


async def save(
    conn: asyncpg.Connection, schema: str, projection: str, positions: Mapping[tuple[str, int], int]
) -> None:
    """Record (topic, partition) → next offset; never moves a partition backwards."""
    if not positions:
        return
    keys = sorted(positions)
    await conn.execute(qualified(schema, SAVE), projection, [t for t, _ in keys],
                       [p for _, p in keys], [positions[k] for k in keys])
