"""Storage backends, one module each; chosen by URL scheme in :func:`evstore.connect`."""
