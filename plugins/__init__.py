"""Plugins bundled with sophonfog-bridge; each registers through the entry-point group."""
