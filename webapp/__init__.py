"""The web service: Django project and its one app (models, job lifecycle, Celery task).

The Celery app lives in webapp/celery.py and is not imported here, so that
importing the settings never pulls in Celery; `celery -A webapp` finds it.
"""
