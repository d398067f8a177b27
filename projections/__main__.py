"""`python -m projections`: run one projector with settings from the environment."""

from __future__ import annotations

import asyncio
import logging

from projections.runner import run
from foundation.settings import load_settings


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
