"""mathforge: versioned problem-solving corpora for math language models (RFT, tutorship amplification) as recipes."""
__version__ = "0.1.0"
