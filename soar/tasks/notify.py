"""Celery tasks for notify (thin: the logic lives in the engine)."""
