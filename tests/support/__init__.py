"""Helpers shared by several test modules (a real gunicorn serving the project)."""
