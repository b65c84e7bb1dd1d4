"""Test doubles and hooks for tests and bench/ (never imported by the product): the scripted OpenAI-protocol
server, the slow-checkpoint hook."""
