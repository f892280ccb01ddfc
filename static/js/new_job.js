/* The new-stylization form: drag-and-drop with previews before upload, presets that
 * fill the fields, sliders kept in step with their number inputs, style layers added
 * and removed, each one's share of the style kept up to date, λ's bound following the
 * layer weighting chosen. The form works without it (plain file inputs and fields); the server
 * checks everything again.
 */
(function () {
  "use strict";

  var form = document.getElementById("new-job-form");
  if (!form) return;
  var data = JSON.parse(document.getElementById("new-job-data").textContent);

  function megabytes(bytes) {
    return bytes < 1e6 ? Math.max(1, Math.round(bytes / 1e3)) + " kB" : (bytes / 1e6).toFixed(1) + " MB";
  }

  // -- files: drop zones and previews ---------------------------------------------------

  function looksLikeImage(file) {
    return /^image\//.test(file.type) || (!file.type && /\.(png|jpe?g|gif|webp|bmp|tiff?)$/i.test(file.name));
  }

  function setUpDropzone(zone) {
    var input = zone.querySelector("input[type=file]");
    var list = document.getElementById(zone.dataset.previews);
    var clientError = zone.querySelector("[data-client-error]");
    var isStyle = zone.dataset.kind === "style";
    var current = [];
    var weights = new Map(); // file key -> typed weight, kept across re-renders

    function key(file) { return file.name + "|" + file.size + "|" + file.lastModified; }

    function take(files, keep) {
      var problems = [];
      var accepted = files.filter(function (file) {
        if (!looksLikeImage(file)) { problems.push(file.name + " is not an image."); return false; }
        if (file.size > data.upload_max_bytes) {
          problems.push(file.name + " is " + megabytes(file.size) + ", over the limit of " + megabytes(data.upload_max_bytes) + ".");
          return false;
        }
        return true;
      });
      var next = keep.concat(accepted);
      var seen = {};
      next = next.filter(function (f) { var k = key(f); if (seen[k]) return false; seen[k] = true; return true; });
      if (!isStyle) next = next.slice(-1);
      if (isStyle && next.length > data.max_styles) {
        problems.push("At most " + data.max_styles + " style images.");
        next = next.slice(0, data.max_styles);
      }
      clientError.textContent = problems.join(" ");
      clientError.hidden = !problems.length;
      current = next;
      var transfer = new DataTransfer();
      current.forEach(function (f) { transfer.items.add(f); });
      input.files = transfer.files;
      render();
    }

    function render() {
      list.querySelectorAll("img").forEach(function (img) { URL.revokeObjectURL(img.src); });
      list.replaceChildren();
      current.forEach(function (file, index) { list.append(card(file, index)); });
      zone.classList.toggle("has-files", current.length > 0);
      if (!isStyle && current.length) {
        form.querySelectorAll("input[name=content_image]").forEach(function (r) { r.checked = false; });
      }
    }

    function card(file, index) {
      var item = document.createElement("li");
      item.className = "preview";
      var img = document.createElement("img");
      img.alt = "Preview of " + file.name;
      img.src = URL.createObjectURL(file);
      var info = document.createElement("span");
      info.className = "preview-info";
      var name = document.createElement("span");
      name.className = "preview-name";
      name.textContent = file.name;
      var meta = document.createElement("span");
      meta.className = "muted small";
      meta.textContent = megabytes(file.size);
      img.onload = function () { meta.textContent = img.naturalWidth + "×" + img.naturalHeight + " · " + megabytes(file.size); };
      img.onerror = function () { meta.textContent = "No preview (the server will check it)"; };
      info.append(name, meta);
      item.append(img, info);
      if (isStyle) {
        var label = document.createElement("label");
        label.className = "tile-weight is-shown";
        label.textContent = "Weight ";
        var weight = document.createElement("input");
        weight.type = "number"; weight.min = "0"; weight.step = "any"; weight.inputMode = "decimal";
        weight.name = "blend_new_" + index;
        weight.setAttribute("aria-label", "Weight of " + file.name);
        weight.value = weights.get(key(file)) || "1";
        weight.addEventListener("input", function () { weights.set(key(file), weight.value); });
        label.append(weight);
        info.append(label);
      }
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "icon-button";
      remove.setAttribute("aria-label", "Remove " + file.name);
      remove.textContent = "✕";
      remove.addEventListener("click", function () {
        take([], current.filter(function (f) { return f !== file; }));
        input.focus();
      });
      item.append(remove);
      return item;
    }

    input.addEventListener("change", function () {
      take(Array.prototype.slice.call(input.files), isStyle ? current : []);
    });
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
        zone.classList.add("is-over");
      });
    });
    ["dragleave", "dragend", "drop"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        if (type === "dragleave" && zone.contains(event.relatedTarget)) return;
        zone.classList.remove("is-over");
      });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      take(Array.prototype.slice.call(event.dataTransfer.files), isStyle ? current : []);
    });

    if (input.files.length) take(Array.prototype.slice.call(input.files), []); // kept by the browser on "back"
  }

  document.querySelectorAll("[data-dropzone]").forEach(setUpDropzone);

  // Picking one of your images as the content replaces a chosen file.
  form.querySelectorAll("input[name=content_image]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      var input = document.getElementById("id_content_file");
      if (radio.checked && input.files.length) {
        input.value = "";
        input.dispatchEvent(new Event("change"));
      }
    });
  });

  // -- sliders and their numbers ------------------------------------------------------------

  function linkSlider(slider) {
    var number = document.getElementById(slider.dataset.sync);
    if (!number || slider.dataset.linked) return;
    slider.dataset.linked = "1";
    slider.addEventListener("input", function () {
      number.value = slider.value;
      number.dispatchEvent(new Event("input", {bubbles: true}));
    });
    number.addEventListener("input", function () {
      if (number.value !== "" && !isNaN(Number(number.value))) slider.value = number.value;
    });
  }

  form.querySelectorAll("input[type=range][data-sync]").forEach(linkSlider);

  // -- presets ------------------------------------------------------------------------------

  var custom = document.getElementById("preset-custom");

  function setValue(name, value) {
    var input = document.getElementById("id_" + name);
    if (!input) return;
    input.value = value === null ? "" : value;
    input.dispatchEvent(new Event("input", {bubbles: true}));
    var slider = form.querySelector("input[type=range][data-sync='id_" + name + "']");
    if (slider) slider.value = input.value;
  }

  function matchingPreset() {
    return Object.keys(data.presets).find(function (name) {
      return data.preset_fields.every(function (field) {
        var input = document.getElementById("id_" + field);
        return input && Number(input.value) === Number(data.presets[name][field]);
      });
    });
  }

  function markPreset() {
    var name = matchingPreset();
    form.querySelectorAll("input[name=preset]").forEach(function (r) { r.checked = r.value === name; });
    custom.hidden = !!name;
  }

  form.querySelectorAll("input[name=preset]").forEach(function (radio) {
    radio.addEventListener("change", function () {
      if (!radio.checked) return;
      data.preset_fields.forEach(function (field) { setValue(field, data.presets[radio.value][field]); });
      custom.hidden = true;
      updateDependentFields();
    });
  });
  data.preset_fields.forEach(function (field) {
    var input = document.getElementById("id_" + field);
    if (input) input.addEventListener("input", function (event) { if (event.isTrusted) markPreset(); });
  });

  // -- fields that depend on others ---------------------------------------------------------

  function updateDependentFields() {
    var adam = document.getElementById("id_optimizer").value === "adam";
    form.querySelectorAll(".only-adam").forEach(function (f) { f.hidden = !adam; });
    var single = Number(document.getElementById("id_scales").value) === 1;
    var coarse = form.querySelector("[data-field=coarse_iterations]");
    if (coarse) coarse.classList.toggle("is-unused", single);
  }
  document.getElementById("id_optimizer").addEventListener("change", updateDependentFields);
  document.getElementById("id_scales").addEventListener("input", updateDependentFields);
  updateDependentFields();

  // -- style layers: add and remove ------------------------------------------------------------

  var rows = document.getElementById("layer-rows");
  var select = document.getElementById("add-layer-select");
  var addButton = document.getElementById("add-layer-button");
  var template = document.getElementById("layer-row-template");
  // VGG19's order of the layers, from the server (stylize's layer names), shallow to deep.
  var rank = function (name) {
    var i = data.layers.order.indexOf(name);
    return i < 0 ? data.layers.order.length : i;
  };

  function refreshSelect() {
    addButton.disabled = select.options.length === 0;
    select.disabled = select.options.length === 0;
  }

  function wireRemove(row) {
    var button = row.querySelector("[data-remove-layer]");
    if (!button) return;
    button.addEventListener("click", function () {
      var name = row.dataset.layer;
      row.remove();
      updateShares();
      var option = new Option(name, name);
      var before = Array.prototype.find.call(select.options, function (o) { return rank(o.value) > rank(name); });
      select.add(option, before || null);
      refreshSelect();
      addButton.focus();
    });
  }

  addButton.addEventListener("click", function () {
    var name = select.value;
    if (!name) return;
    var html = template.innerHTML.replace(/__layer__/g, name);
    var holder = document.createElement("div");
    holder.innerHTML = html.trim();
    var row = holder.firstElementChild;
    var after = Array.prototype.find.call(rows.children, function (r) { return rank(r.dataset.layer) > rank(name); });
    rows.insertBefore(row, after || null);
    select.remove(select.selectedIndex);
    var role = row.querySelector("[data-role]");
    if (role) role.textContent = data.layers.roles[name] || "";
    row.querySelector("input[type=number]").max = maxLayerWeight();
    linkSlider(row.querySelector("input[type=range]"));
    wireRemove(row);
    refreshSelect();
    updateShares();
    row.querySelector("input[type=number]").focus();
  });
  Array.prototype.forEach.call(rows.children, wireRemove);
  refreshSelect();

  // -- style layers: each one's share, and the bound of λ ----------------------------------------

  // The server renders the same text for the first values (webapp/pages/params.layer_shares).
  function shareText(fraction) {
    var percent = Number((fraction * 100).toFixed(6)); // 0.6 / 1.6 is 37.4999…: 38 %, as people count
    if (percent === 0) return "0 %";
    if (percent < 1) return "<1 %";
    return Math.round(percent) + " %";
  }

  function weightOf(row) {
    var value = Number(row.querySelector("input[type=number]").value);
    return isFinite(value) && value > 0 ? value : 0;
  }

  function updateShares() {
    var list = Array.prototype.slice.call(rows.children);
    var total = list.reduce(function (sum, row) { return sum + weightOf(row); }, 0);
    var shown = normalisation.value !== "seed"; // with the seed's formula λ / Σλ is not the share
    list.forEach(function (row) {
      var share = row.querySelector("[data-share]");
      if (!share) return;
      share.textContent = shareText(total > 0 ? weightOf(row) / total : 0);
      share.hidden = !shown;
    });
  }

  var normalisation = document.getElementById("id_layer_normalisation");

  function maxLayerWeight() {
    var top = data.layers.max_weights[normalisation.value];
    return String(top === undefined ? Math.max.apply(null, Object.values(data.layers.max_weights)) : top);
  }

  function updateLayerBounds() {
    var top = maxLayerWeight();
    rows.querySelectorAll("input[type=number]").forEach(function (input) { input.max = top; });
    var templateInput = template.content.querySelector("input[type=number]");
    if (templateInput) templateInput.max = top;
    updateShares();
  }

  rows.addEventListener("input", updateShares);
  normalisation.addEventListener("change", updateLayerBounds);
  updateLayerBounds();

  // -- submitting ----------------------------------------------------------------------------

  var submit = document.getElementById("submit-button");
  form.addEventListener("submit", function () {
    var uploading = Array.prototype.some.call(form.querySelectorAll("input[type=file]"), function (i) { return i.files.length; });
    submit.disabled = true;
    submit.classList.add("is-busy");
    submit.textContent = uploading ? "Uploading…" : "Starting…";
    form.setAttribute("aria-busy", "true");
  });
  window.addEventListener("pageshow", function () {
    submit.disabled = false;
    submit.classList.remove("is-busy");
    submit.textContent = "Stylize";
    form.removeAttribute("aria-busy");
  });

  var summary = document.getElementById("error-summary");
  if (summary) summary.focus();
})();
