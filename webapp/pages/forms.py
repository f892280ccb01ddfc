"""Forms of the browser pages: sign up, a new stylization, the top-patches picker.

The new-job form reads every default, bound, choice and help text from the
field metadata of stylize.StyleConfig, and validates the params it builds through
lifecycle.validate_params (StyleConfig.from_dict underneath), so the page, the REST API
and the CLI cannot disagree about what is allowed. A ConfigError names the option
at fault; ERROR_FIELDS says which input on the page shows it.

Uploaded files are stored as soon as they are accepted (storage.store_upload; an
identical file is stored once), before the params are checked: when the page comes
back with an error, they are selected among the person's images, so nobody uploads
the same picture twice. That is why clean() stores them: it is the one step that sees
every input. The number of style images is checked before any of them is stored.
"""

from __future__ import annotations

from typing import Any, Mapping

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm

import stylize
from stylize.config import LAYER_ROLES, MAX_LAYER_WEIGHTS, MAX_SIZE, PRESETS, StyleConfig, field_info
from stylize.vgg import LAYER_NAMES, layer_channels

from ..jobs import lifecycle, quota, storage
from ..jobs.present import LABELS, label
from ..models import StyleImage
from ..numbers import finite_float
from .params import (ERROR_FIELDS, PARAM_FIELDS, RELU_LAYERS, config_field, default_params, fmt, layer_order,
                     layer_shares, matching_preset)

# The λ sliders span a share (0..1, balanced weighting); the number beside each takes up to the
# largest λ of the chosen layer_normalisation (its input's max, switched by the page's script).
LAYER_SLIDER_MAX = 1.0
# What the λ fields accept whatever the normalisation: StyleConfig then says when a weight is too
# large for the one chosen (shown at the style layers, as its other messages about them).
LAYER_FIELD_MAX = max(MAX_LAYER_WEIGHTS.values())


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files; cleans to a list (empty when none was chosen)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else [data] if data else []
        return [super(MultipleFileField, self).clean(f, initial) for f in files]


# -- sign up ------------------------------------------------------------------------------

class SignupForm(UserCreationForm):
    """A user name and a password twice; Django's password validators apply."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(autocomplete="username", autocapitalize="none")


# -- a new stylization ----------------------------------------------------------------------

class NewJobForm(forms.Form):
    """Content and style images (new uploads or the person's own), and every option of the run.

    After is_valid(): `content` (StyleImage), `styles` (list, in order) and `params`
    (validated, ready for lifecycle.create_job).
    """

    preset = forms.ChoiceField(choices=[(name, name.title()) for name in PRESETS], required=False,
                               widget=forms.RadioSelect, label="Preset")
    content_file = forms.FileField(
        required=False, label="Content image",
        widget=forms.FileInput(attrs={"accept": "image/*"}),
        help_text="The photo to repaint. PNG, JPEG, WebP, …")
    content_image = forms.ModelChoiceField(queryset=StyleImage.objects.none(), required=False,
                                           widget=forms.RadioSelect, label="Or one of your images")
    style_files = MultipleFileField(
        required=False, label="Style images",
        widget=MultipleFileInput(attrs={"accept": "image/*", "multiple": True}),
        help_text="One or more paintings whose style to take. With several, set how much each counts.")
    style_images = forms.ModelMultipleChoiceField(queryset=StyleImage.objects.none(), required=False,
                                                  widget=forms.CheckboxSelectMultiple,
                                                  label="Or some of your images")
    content_layer = forms.ChoiceField(
        choices=[(n, n) for n in RELU_LAYERS], label=LABELS["content_layers"],
        help_text="The VGG19 layer whose activations the result must match; deeper keeps less detail.")
    # Not inputs of their own: the places where errors about several inputs are shown.
    style_layers = forms.CharField(required=False, widget=forms.HiddenInput)
    style_blend = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, data=None, files=None, *, owner, params: Mapping[str, Any] | None = None,
                 content: StyleImage | None = None, styles=(), blend: Mapping[str, float] | None = None,
                 **kwargs):
        """Unbound: `params` (a job's, for "run again") or the defaults, and the images to preselect;
        `blend` maps an image id to its weight."""
        params = dict(params) if params else default_params()
        initial = {name: params[name] for name in PARAM_FIELDS if name in params}
        content_layers = params.get("content_layers") or {}
        initial["content_layer"] = (max(content_layers, key=content_layers.get) if content_layers
                                    else next(iter(StyleConfig().content_layers)))
        initial["preset"] = matching_preset(params)
        initial["content_image"] = str(content.pk) if content else None
        initial["style_images"] = [str(image.pk) for image in styles]
        kwargs.setdefault("initial", {}).update(initial)
        super().__init__(data, files, **kwargs)
        self.owner = owner
        self.initial_blend = {str(k): float(v) for k, v in (blend or {}).items()}
        self.initial_style_layers = dict(params.get("style_layers") or {})
        images = StyleImage.objects.filter(owner=owner)
        self.fields["content_image"].queryset = images
        self.fields["style_images"].queryset = images
        for name in PARAM_FIELDS:
            self.fields[name] = config_field(name, high=min(MAX_SIZE, settings.OUTPUT_MAX_SIZE)
                                             if name == "size" else None)
        for layer in self.style_layer_names():
            weight = self.fields[f"layer_{layer}"] = forms.FloatField(
                label=f"λ {layer}", initial=self.initial_style_layers.get(layer, 0.0),
                min_value=0.0, max_value=LAYER_FIELD_MAX, widget=forms.NumberInput(attrs={"step": "any"}))
            # The browser's hint is the bound of the weighting chosen (the field's own max_value
            # would be written there otherwise); the page's script switches it with the choice.
            weight.widget.attrs.update(min=0, max=fmt(self.max_layer_weight()))
        self.content: StyleImage | None = None
        self.styles: list[StyleImage] = []
        self.params: dict[str, Any] = {}
        self.upload_errors: list[stylize.ImageError] = []  # what store_upload refused, for error_status()
        self.stored_uploads: dict[int, StyleImage] = {}  # index among the posted style files -> stored

    # -- what the page shows ------------------------------------------------------------

    def style_layer_names(self) -> list[str]:
        """The style layers with a weight input: those posted, or those of the initial params."""
        if self.is_bound:
            names = [n for n in LAYER_NAMES if f"layer_{n}" in self.data]
        else:
            names = list(self.initial_style_layers)
        return layer_order(names)

    def layer_normalisation(self) -> str:
        """The layer_normalisation the page shows as chosen: the posted one when it is a valid
        choice, else the initial one (the job's for "run again", else StyleConfig's default)."""
        choices = field_info("layer_normalisation").metadata["choices"]
        if self.is_bound and self.data.get("layer_normalisation") in choices:
            return self.data["layer_normalisation"]
        initial = self.initial.get("layer_normalisation")
        return initial if initial in choices else StyleConfig().layer_normalisation

    def max_layer_weight(self) -> float:
        """The largest λ of the chosen normalisation: the max of the λ number inputs."""
        return MAX_LAYER_WEIGHTS[self.layer_normalisation()]

    def shares_shown(self) -> bool:
        """Whether λ / Σλ is each layer's share of the style's influence (balanced weighting);
        with the seed's formula deep layers outweigh shallow ones whatever λ says."""
        return self.layer_normalisation() != "seed"

    def style_layer_rows(self) -> list[dict]:
        names = self.style_layer_names()
        shares = layer_shares({n: self[f"layer_{n}"].value() for n in names})
        return [{"name": n, "field": self[f"layer_{n}"], "removable": n not in StyleConfig().style_layers,
                 "role": LAYER_ROLES.get(n, ""), "share": shares[n]} for n in names]

    def layer_input(self) -> dict[str, str]:
        """The bounds of a λ input and its slider, and the λ of a row that is added (a default
        layer's, from StyleConfig)."""
        return {"max": fmt(self.max_layer_weight()), "slider_max": fmt(LAYER_SLIDER_MAX),
                "new_value": fmt(next(iter(StyleConfig().style_layers.values())))}

    def addable_layers(self) -> list[str]:
        shown = set(self.style_layer_names())
        return [n for n in RELU_LAYERS if n not in shown]

    def selected_content_id(self) -> str:
        return str(self["content_image"].value() or "")

    def selected_style_ids(self) -> list[str]:
        return [str(v) for v in (self["style_images"].value() or [])]

    def blend_value(self, image_id) -> str:
        if self.is_bound:
            return str(self.data.get(f"blend_{image_id}", "1"))
        return fmt(self.initial_blend.get(str(image_id), 1.0))

    def library(self) -> list[dict]:
        """The person's images, those chosen first: id, the image, whether chosen as content / style, weight."""
        content_id, style_ids = self.selected_content_id(), self.selected_style_ids()
        rows = [{"image": image, "id": str(image.pk), "is_content": str(image.pk) == content_id,
                 "is_style": str(image.pk) in style_ids, "blend": self.blend_value(image.pk)}
                for image in StyleImage.objects.filter(owner=self.owner).order_by("-created")]
        return sorted(rows, key=lambda row: not (row["is_content"] or row["is_style"]))

    def error_list(self) -> list[tuple[str, str, str]]:
        """(input id, label, message) of every error, for the summary at the top of the page."""
        out = []
        for name, errors in self.errors.items():
            if name == forms.forms.NON_FIELD_ERRORS:
                continue
            label = {"style_layers": LABELS["style_layers"], "style_blend": LABELS["style_blend"]}.get(name)
            label = label or (self.fields[name].label if name in self.fields else name)
            for message in errors:
                out.append((self.input_id(name), label, message))
        return out

    def input_id(self, name: str) -> str:
        return {"style_layers": "style-layers", "style_blend": "style-files-drop",
                "content_file": "content-drop", "style_files": "style-files-drop"}.get(name, f"id_{name}")

    # -- checking ---------------------------------------------------------------------

    def clean(self):
        data = super().clean()
        self.content = self._clean_content(data)
        # Counted before any style file is stored: a request over the limit stores none of them.
        self.styles, blend = self._clean_styles(data) if self._style_count_allowed(data) else ([], None)
        self._keep_stored_uploads()
        if any(name in self.errors for name in (*PARAM_FIELDS, "content_layer")) or any(
                f"layer_{n}" in self.errors for n in self.style_layer_names()):
            return data  # the params are not all numbers yet: nothing more to check
        params = {name: data.get(name) for name in PARAM_FIELDS}
        params["content_layers"] = {data["content_layer"]: 1.0}
        params["style_layers"] = {n: data[f"layer_{n}"] for n in self.style_layer_names()}
        params["style_blend"] = blend if blend is not None else []
        try:
            config = lifecycle.validate_params(params, max(1, len(self.styles)))
        except stylize.ConfigError as error:
            self.add_config_error(error)
            return data
        self.params = {key: value for key, value in config.to_dict().items()
                       if key not in lifecycle.SERVER_CHOSEN_OPTIONS}
        return data

    def _clean_content(self, data) -> StyleImage | None:
        upload = data.get("content_file")
        if upload:
            try:
                return storage.store_upload(self.owner, upload)
            except stylize.ImageError as error:
                self.upload_errors.append(error)
                self.add_error("content_file", str(error))
                return None
        if data.get("content_image"):
            return data["content_image"]
        if "content_image" not in self.errors and "content_file" not in self.errors:
            self.add_error("content_file", "Choose a content image: upload one, or pick one of yours below.")
        return None

    def _style_count_allowed(self, data) -> bool:
        """Whether the chosen images and the new files together are not more than a job may have
        (none at all is said by _clean_styles, which knows which files were accepted)."""
        count = len(data.get("style_images") or []) + len(data.get("style_files") or [])
        try:
            lifecycle.check_style_count(max(count, 1))
        except lifecycle.JobInputError as error:
            self.add_job_error(error)
            return False
        return True

    def _clean_styles(self, data) -> tuple[list[StyleImage], list[float] | None]:
        """The style images (chosen ones first, then new uploads, stored here) and their blend
        weights ([] when all are equal, None when one could not be read)."""
        chosen = {str(image.pk): image for image in data.get("style_images") or []}
        posted = self.data.getlist("style_images") if hasattr(self.data, "getlist") else list(chosen)
        styles = [chosen[i] for i in dict.fromkeys(posted) if i in chosen]
        weights = [finite_float(self.data.get(f"blend_{image.pk}", "1")) for image in styles]
        for index, upload in enumerate(data.get("style_files") or []):
            try:
                image = storage.store_upload(self.owner, upload)
            except stylize.ImageError as error:
                self.upload_errors.append(error)
                self.add_error("style_files", str(error))
                continue
            self.stored_uploads[index] = image
            if image in styles:  # the same picture twice counts once
                continue
            styles.append(image)
            weights.append(finite_float(self.data.get(f"blend_new_{index}", "1")))
        if not styles and "style_files" not in self.errors and "style_images" not in self.errors:
            self.add_error("style_files", "Choose at least one style image: upload one, or pick some of yours below.")
        if any(w is None for w in weights):
            self.add_error("style_blend", "Each style's weight must be a number.")
            return styles, None
        if len(set(weights)) <= 1 and all(w > 0 for w in weights):
            return styles, []  # all equal: the default, which also fits a later change of styles
        return styles, weights

    def _keep_stored_uploads(self) -> None:
        """Show what was stored as chosen images, with the weights typed for it, if the page comes back."""
        if not (self.content or self.stored_uploads):
            return
        data = self.data.copy()
        if self.content:
            data["content_image"] = str(self.content.pk)
        ids = [str(image.pk) for image in self.styles]
        data.setlist("style_images", ids)
        for index, image in self.stored_uploads.items():
            data[f"blend_{image.pk}"] = data.get(f"blend_new_{index}", "1")
        self.data = data

    def error_status(self) -> int:
        """The HTTP status of the page that shows this form's errors, as the API would answer:
        413 for a file or picture over the limits, 415 for a file that is not a usable image,
        400 for anything else."""
        if any(isinstance(e, (storage.UploadTooLarge, stylize.ImageTooLarge, quota.QuotaExceeded))
               for e in self.upload_errors):
            return 413
        return 415 if self.upload_errors else 400

    def add_config_error(self, error: stylize.ConfigError) -> None:
        """Show a ConfigError (from validate_params or create_job) next to the input it is about."""
        field = ERROR_FIELDS.get(error.field)
        message = error.reason[:1].upper() + error.reason[1:]
        if error.field == "params":  # about the job as a whole (its cost budget)
            self.add_error(None, message.rstrip(".") + ".")
        elif field is None:
            self.add_error(None, f"{label(error.field)}: {error.reason}")
        else:
            self.add_error(field, message.rstrip(".") + ".")

    def add_job_error(self, error: lifecycle.JobError) -> None:
        self.add_error(ERROR_FIELDS.get(error.field or "", None), str(error))


class PatchesForm(forms.Form):
    """Which unit of which layer to show the top patches of (the job page's picker)."""

    layer = forms.ChoiceField(choices=[(n, n) for n in RELU_LAYERS], initial="relu3_1")
    unit = forms.IntegerField(min_value=0, initial=0)

    def clean(self):
        data = super().clean()
        layer, unit = data.get("layer"), data.get("unit")
        if layer is not None and unit is not None and unit >= layer_channels(layer):
            n = layer_channels(layer)
            self.add_error("unit", f"{layer} has {n} units: choose one from 0 to {n - 1}.")
        return data

    def first_error(self) -> str:
        for name, errors in self.errors.items():
            label = "" if name == forms.forms.NON_FIELD_ERRORS else f"{name}: "
            return f"{label}{errors[0]}"
        return ""
