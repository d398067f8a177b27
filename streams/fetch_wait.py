"""How long the worker's Kafka consumer lets a fetch wait for records.

Faust's aiokafka driver fixes `fetch_max_wait_ms` at 1,500 ms. Apache Kafka answers a
waiting fetch as soon as a record arrives, so there the value only bounds idle polling;
Tansu (the embedded broker of `warroom up`) answers only when the wait is over, so every
command waited a quarter to a half of it before the worker saw it (p50 ~400 ms on Tansu
with 1,500 ms, ~30 ms with 100 ms, same raw produce→consume loop). `use_fetch_wait`
gives one app a transport whose worker consumer waits at most the given time, and hands
records to the conductor with one task each (`streams.drain`); the rest of Faust's
consumer (group, assignor, offsets, rebalancing) is unchanged.
"""

from __future__ import annotations

import aiokafka
import faust
from faust.transport.drivers import aiokafka as driver

from foundation.fetching import FETCH_WAIT_MS
from streams.drain import SharedInterruption

_TESTED_WITH = {"faust": "0.15.3", "aiokafka": "0.14.0"}


def use_fetch_wait(app: faust.App, wait_ms: int = FETCH_WAIT_MS) -> None:
    """Make `app`'s worker consumer wait at most `wait_ms` per fetch.

    Call before anything uses `app.transport` (declaring topics does). Refuses another
    faust-streaming or aiokafka version than the one this was checked against, since it
    sets the consumer's fetch wait where that version keeps it.
    """
    found = {"faust": faust.__version__, "aiokafka": aiokafka.__version__}
    if found != _TESTED_WITH:
        raise RuntimeError(f"use_fetch_wait is written for {_TESTED_WITH}, found {found}")
    if app._transport is not None:
        raise RuntimeError("use_fetch_wait must be applied before the app's transport exists")

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: driver.Transport) -> aiokafka.AIOKafkaConsumer:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = wait_ms  # read when the consumer starts its fetcher
            return consumer

    class Consumer(SharedInterruption, driver.Consumer):
        def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        pass

    Transport.Consumer = Consumer
    app.transport = Transport(app.conf.broker_consumer, app)

