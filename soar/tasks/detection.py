"""Celery tasks for detection (thin: the logic lives in the engine)."""
