"""An example third-party qslm plugin."""
