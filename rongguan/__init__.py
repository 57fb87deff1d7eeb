"""The ``rongguan`` command: the shell on top that wires the parts. Nothing imports it."""
