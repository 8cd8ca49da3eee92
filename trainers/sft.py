"""SFT on a mathforge build: `python -m mathforge.trainers.sft CONFIG.yaml` (also under `accelerate launch -m`)."""
from mathforge.trainers.cli import entry

if __name__ == "__main__":
    entry("sft")
