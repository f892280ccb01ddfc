"""StyleImage.stored_bytes, what counts against STORAGE_QUOTA_BYTES; existing images get the size
of their stored file (0 if it cannot be read: better uncounted than a failed migration)."""

from django.core.files.storage import default_storage
from django.db import migrations, models


def measure(apps, schema_editor):
    StyleImage = apps.get_model("webapp", "StyleImage")
    for image in StyleImage.objects.filter(stored_bytes=0).only("pk", "file").iterator():
        try:
            size = default_storage.size(image.file.name)
        except (OSError, NotImplementedError, ValueError):
            continue
        StyleImage.objects.filter(pk=image.pk).update(stored_bytes=size)


class Migration(migrations.Migration):

    dependencies = [
        ('webapp', '0002_job_attempts_and_device_memory'),
    ]

    operations = [
        migrations.AddField(
            model_name='styleimage',
            name='stored_bytes',
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(measure, migrations.RunPython.noop),
    ]
