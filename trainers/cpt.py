"""Continued pre-training on a mathforge build: `python -m trainers.cpt CONFIG.yaml` (also `accelerate launch -m`)."""
from trainers.cli import entry

if __name__ == "__main__":
    entry("cpt")
