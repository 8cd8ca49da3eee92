"""Continued pre-training on a mathforge build: `python -m mathforge.trainers.cpt CONFIG.yaml` (also `accelerate launch -m`)."""
from mathforge.trainers.cli import entry

if __name__ == "__main__":
    entry("cpt")
