"""`python -m gateway`: serve the HTTP API with settings from the environment / warroom.toml."""

from gateway.app import run
from foundation.settings import load_settings

if __name__ == "__main__":
    run(load_settings())
