"""Fixtures of the end-to-end tier: the whole stack, and clients for it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from stack import Stack, start_stack


@pytest.fixture(scope="session")
def stack(kafka, postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running Warroom shared by the e2e tests (each test uses its own incidents)."""
    running = start_stack(kafka.bootstrap, postgres.dsn, tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture
async def responder(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client("responder", sub="alice") as client:
        yield client
