"""SFT on a mathforge build: `python -m trainers.sft CONFIG.yaml` (also under `accelerate launch -m`)."""
from trainers.cli import entry

if __name__ == "__main__":
    entry("sft")
