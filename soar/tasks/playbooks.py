"""Celery tasks for playbooks (thin: the logic lives in the engine)."""
