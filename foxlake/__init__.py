"""The ``foxlake`` command line: argument parsing over the layers; nothing imports it."""
