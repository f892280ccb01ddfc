"""The REST API, version 1 (Django REST framework): images, jobs and batches of the same
models and lifecycle (webapp/jobs/lifecycle.py) as the pages; no second path to the queue."""
