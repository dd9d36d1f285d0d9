"""Models of reporting; filled in by its issue."""
