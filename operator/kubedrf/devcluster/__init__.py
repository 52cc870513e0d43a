"""Local cluster tooling: pinned control-plane binaries and the kwok-based dev cluster."""
