"""The YAML presets (``<kind>/<name>.yaml``), installed as the package ``foresight.configs``.

A package rather than a plain folder so that every kind of install (editable, wheel) ships the
presets and :func:`foresight.config.configs_dir` finds them from any working directory.
"""
