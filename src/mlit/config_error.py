"""The config's error: a value that cannot work. Every layer that checks the config raises it (the schema,
the grid's expansion and cluster requests, the checks that read files); it lives at the bottom, with no
imports, so that the pure modules raise it without importing what reads files."""


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key, the value and the fix."""
