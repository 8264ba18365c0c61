"""Built-in plugins. Each module is registered at start-up from
:data:`pipeline.plugins.BUILTIN_PLUGINS` and can be blocked with ``-p no:NAME``."""
