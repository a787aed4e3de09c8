"""Log evidence: the signature catalogue, the streaming scanner, and joining log findings to structural ones."""
