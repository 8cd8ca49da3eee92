"""Thin TRL trainers for mathforge corpora: continued pre-training (cpt) and SFT."""
