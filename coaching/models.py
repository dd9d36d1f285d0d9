"""Models of coaching; filled in by its issue."""
