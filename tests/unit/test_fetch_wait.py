"""The worker's consumer fetches with the wait `use_fetch_wait` gives it, and nothing else changes."""

from __future__ import annotations

import faust
import pytest

from foundation.fetching import FETCH_WAIT_MS
from streams import fetch_wait
from streams.app import create_app
from streams.fetch_wait import use_fetch_wait
from foundation.settings import Settings


def _worker_consumer(app: faust.App):
    thread = app.consumer._new_consumer_thread()
    return thread._create_worker_consumer(app.transport)


async def test_the_worker_consumer_waits_what_it_is_given(tmp_path) -> None:
    streams = create_app(Settings(data_dir=tmp_path))
    consumer = _worker_consumer(streams.app)
    assert consumer._fetch_max_wait_ms == FETCH_WAIT_MS
    # The rest of Faust's configuration stays: its group, manual commits, its assignor.
    assert consumer._group_id == streams.app.conf.id
    assert consumer._enable_auto_commit is False


async def test_without_it_faust_waits_its_own_fixed_time(tmp_path) -> None:
    app = faust.App("plain", broker="kafka://127.0.0.1:9", datadir=str(tmp_path))
    assert _worker_consumer(app)._fetch_max_wait_ms == 1500
    other = faust.App("tuned", broker="kafka://127.0.0.1:9", datadir=str(tmp_path))
    use_fetch_wait(other, 7)
    assert _worker_consumer(other)._fetch_max_wait_ms == 7
    assert _worker_consumer(app)._fetch_max_wait_ms == 1500  # one app's setting only


def test_refuses_another_faust_version(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch_wait.faust, "__version__", "0.99.0")
    app = faust.App("other-version", broker="kafka://127.0.0.1:9", datadir=str(tmp_path))
    with pytest.raises(RuntimeError, match="0.99.0"):
        use_fetch_wait(app)


def test_refuses_an_app_whose_transport_exists(tmp_path) -> None:
    app = faust.App("late", broker="kafka://127.0.0.1:9", datadir=str(tmp_path))
    app.transport  # noqa: B018 (declaring a topic does this)
    with pytest.raises(RuntimeError, match="before"):
        use_fetch_wait(app)
