"""Foundry Local (and any OpenAI-compatible endpoint) over HTTP: the engine, endpoint discovery,
and the service's error answers turned into typed errors."""
