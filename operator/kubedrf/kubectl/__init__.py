"""``kubectl drf``: the master's view of a live cluster, computed where the user runs it.

The plugin lists the API as the master does, freezes the same view and runs the same pure
allocator on it, so what it prints is what the master would decide on that state; it writes
nothing. ``live`` reads, ``explain`` computes, ``scenario`` dumps, ``main`` parses and prints.
"""
