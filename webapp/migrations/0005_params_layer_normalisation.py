"""StyleConfig.layer_normalisation: jobs stored before the option existed ran with the seed's
formula, so their params get `"layer_normalisation": "seed"` (else they would read back as the new
default, "balanced", and "run again" would not reproduce them). A batch's params keep the overrides
its jobs were created with ({"params": {...}, "preset": ...}): those get it too.

Reverse: the key is removed where it is "seed" (the code before this migration knows no such option).
"""

from django.db import migrations

from stylize.config import NORMALISATION_BEFORE_THE_OPTION

KEY = "layer_normalisation"
CHUNK = 500


def _with_key(params):
    """The params with the key added, or None when nothing changes."""
    if not isinstance(params, dict) or KEY in params:
        return None
    return {**params, KEY: NORMALISATION_BEFORE_THE_OPTION}


def _without_key(params):
    if not isinstance(params, dict) or params.get(KEY) != NORMALISATION_BEFORE_THE_OPTION:
        return None
    return {name: value for name, value in params.items() if name != KEY}


def _in_batch(change):
    """A batch stores {"params": the overrides its jobs share, "preset": ...}: the overrides change."""
    def apply(stored):
        if not isinstance(stored, dict):
            return None
        inner = change(stored.get("params"))
        return None if inner is None else {**stored, "params": inner}
    return apply


def _rewrite(model, apply) -> None:
    # The ids first, then a chunk at a time: no cursor stays open over rows being written
    # (SQLite does not isolate the two within one connection).
    pks = list(model.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), CHUNK):
        changed = []
        for row in model.objects.filter(pk__in=pks[start:start + CHUNK]).only("pk", "params"):
            params = apply(row.params)
            if params is not None:
                row.params = params
                changed.append(row)
        model.objects.bulk_update(changed, ["params"])


def add_the_normalisation(apps, schema_editor):
    _rewrite(apps.get_model("webapp", "StyleJob"), _with_key)
    _rewrite(apps.get_model("webapp", "Batch"), _in_batch(_with_key))


def remove_the_normalisation(apps, schema_editor):
    _rewrite(apps.get_model("webapp", "StyleJob"), _without_key)
    _rewrite(apps.get_model("webapp", "Batch"), _in_batch(_without_key))


class Migration(migrations.Migration):

    dependencies = [
        ('webapp', '0004_worker_machine_and_unit_patches'),
    ]

    operations = [
        migrations.RunPython(add_the_normalisation, remove_the_normalisation),
    ]
