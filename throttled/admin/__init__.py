"""Operator actions shared by the CLI and the HTTP APIs (one implementation, two shells)."""
