// The alzmri page: upload one file to POST predict?explain=true and show the answer.
// Everything from the server is written with textContent or as an <img> src (data URL):
// no HTML is ever built from strings.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  function percent(p) {
    return (100 * p).toFixed(1) + " %";
  }

  function showError(message) {
    $("status").textContent = "";
    $("error").textContent = message;
    $("error").hidden = false;
    $("result").hidden = true;
    $("result").dataset.state = "error";
  }

  async function loadHealth() {
    try {
      const r = await fetch("health");
      const h = await r.json();
      const m = h.model;
      const cal = m.calibrated ? "calibrated (temperature " + m.temperature.toFixed(3) + ")"
                               : "not calibrated";
      $("model-info").textContent = "Model " + m.name + ", run " + m.run + ", version " + m.version +
        ", " + m.backend + " backend, " + m.image_size + " x " + m.image_size + " input, probabilities " + cal + ".";
    } catch (e) {
      $("model-info").textContent = "The service did not describe its model (" + e.message + ").";
    }
  }

  function renderBars(pred) {
    const bars = $("bars");
    bars.replaceChildren();
    for (const cls of pred.model.classes) {
      const p = pred.probabilities[cls];
      const row = document.createElement("div");
      row.className = "bar-row" + (cls === pred.predicted_class ? " predicted" : "");
      row.dataset.class = cls;
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = cls;
      const track = document.createElement("div");
      track.className = "bar-track";
      track.setAttribute("role", "img");
      track.setAttribute("aria-label", cls + " " + percent(p));
      const fill = document.createElement("div");
      fill.className = "bar-fill";
      fill.style.width = (100 * p).toFixed(2) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = percent(p);
      row.append(label, track, value);
      bars.appendChild(row);
    }
  }

  function render(pred) {
    $("predicted-class").textContent = pred.predicted_class;
    $("confidence").textContent = "(probability " + percent(pred.confidence) + ")";
    $("input-warning").textContent = pred.warning || "";
    $("input-warning").hidden = !pred.warning;
    const ex = pred.explanation;
    const inp = pred.input;
    $("slice").src = ex.slice_png;
    $("overlay").src = ex.overlay_png;
    if (inp.kind === "volume") {
      $("slice-caption").textContent = "axial slice " + ex.slice_index + " of " + inp.n_slices +
        " (middle of the central slices " + inp.central_slices[0] + "-" + (inp.central_slices[1] - 1) + ")";
    } else {
      $("slice-caption").textContent = inp.filename + " (" + inp.width + " x " + inp.height + " pixels)";
    }
    $("overlay-caption").textContent = "Grad-CAM for " + ex.explained_class +
      ": red marks the regions that most raised this class's score";
    renderBars(pred);
    const m = pred.model;
    $("calibration-note").textContent = (inp.kind === "volume" ? inp.aggregation + ". " : "") +
      (m.calibrated ? "Probabilities are temperature-scaled (T = " + m.temperature.toFixed(3) + ")."
                    : "Probabilities are not calibrated (the run has no calibration.json).") +
      " Model version " + m.version + ".";
    $("status").textContent = "";
    $("result").hidden = false;
    $("result").dataset.state = "done";
  }

  async function upload(file) {
    if (!file) return;
    $("error").hidden = true;
    $("result").dataset.state = "busy";
    $("status").textContent = "Analysing " + file.name + "\u2026";
    const form = new FormData();
    form.append("file", file, file.name);
    let r;
    try {
      r = await fetch("predict?explain=true", { method: "POST", body: form });
    } catch (e) {
      showError("The request failed: " + e.message);
      return;
    }
    let body;
    try {
      body = await r.json();
    } catch (e) {
      showError("The server answered " + r.status + " without a readable body.");
      return;
    }
    if (!r.ok) {
      showError(typeof body.detail === "string" ? body.detail : "The server answered " + r.status + ".");
      return;
    }
    render(body);
  }

  document.addEventListener("DOMContentLoaded", () => {
    loadHealth();
    const drop = $("drop");
    $("file").addEventListener("change", (e) => upload(e.target.files[0]));
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      upload(e.dataTransfer.files[0]);
    });
  });
})();
