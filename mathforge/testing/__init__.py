"""Fixtures and demo servers for offline runs: synthetic problems, a tiny model, a scripted OpenAI-compatible server."""
