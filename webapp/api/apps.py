from django.apps import AppConfig


class ApiConfig(AppConfig):
    """An app of its own only for its one table (IdempotencyKey) and that table's migrations."""

    name = "webapp.api"
    label = "api"
    default_auto_field = "django.db.models.BigAutoField"
