"""`python -m projections`: run one projector with settings from the environment."""

from __future__ import annotations

import logging

from foundation.event_loop import run as run_on_event_loop
from foundation.settings import load_settings
from projections.runner import run


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_on_event_loop(run(settings))


if __name__ == "__main__":
    main()
