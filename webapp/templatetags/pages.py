"""Template helpers of the browser pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.simple_tag
def control(field, **attrs):
    """The field's widget, tied to its help text and error message for screen readers."""
    described = []
    if field.errors:
        described.append(f"{field.auto_id}_error")
    if field.help_text:
        described.append(f"{field.auto_id}_helptext")
    if described:
        attrs["aria-describedby"] = " ".join(described)
    if field.errors:
        attrs["aria-invalid"] = "true"
    return field.as_widget(attrs={key.replace("_", "-"): value for key, value in attrs.items()})


@register.filter
def duration(seconds) -> str:
    """12.3 -> "12 s", 75 -> "1 min 15 s", 4000 -> "1 h 7 min"; "" for None."""
    if seconds is None or seconds == "":
        return ""
    seconds = max(0, round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


@register.filter
def percent(fraction) -> int:
    try:
        return max(0, min(100, round(float(fraction) * 100)))
    except (TypeError, ValueError):
        return 0


@register.filter
def ago(moment) -> str:
    """ "just now", "5 minutes ago", "2 days ago"."""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if not moment:
        return ""
    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment).split(',')[0]} ago"
