"""`manage.py prune_idempotency_keys`: delete the API's stored Idempotency-Key answers older than
IDEMPOTENCY_KEY_TTL_SECONDS (the reconciler also does it on every pass of its loop)."""

from django.core.management.base import BaseCommand

from webapp.api.idempotency import prune


class Command(BaseCommand):
    help = "Delete stored Idempotency-Key answers older than IDEMPOTENCY_KEY_TTL_SECONDS; prints how many."

    def handle(self, **options):
        self.stdout.write(f"{prune()} idempotency key(s) pruned")
