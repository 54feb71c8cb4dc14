"""Deployment helpers: the packaging of the function source."""
