"""Celery tasks: each loads by id, calls the engine, stores the result. No logic here."""
