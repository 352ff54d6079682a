"""Command-line entry points (``banda-train``, ``banda-separate``, ``banda-evaluate``, ...)."""
