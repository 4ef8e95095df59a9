"""Packaged data: the built-in rubrics and prompt templates (mapped from the top-level folders)."""
