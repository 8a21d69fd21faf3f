"""The JSON shapes of the service's answers (pydantic models; FastAPI turns them into the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["BrainPrediction", "BrainSlice", "Error", "Explanation", "Health", "InputInfo", "ModelInfo", "Prediction"]


class ModelInfo(BaseModel):
    name: str = Field(description="registered model name of the run (e.g. altzcnn)")
    run: str = Field(description="run folder name")
    version: str = Field(description="alzmri version + first 12 hex of the weights' SHA-256")
    alzmri_version: str
    weights_sha256: str = Field(description="SHA-256 of model.safetensors")
    backend: str = Field(description="torch or onnx; scikit-learn for a brain-level baseline")
    image_size: int = Field(description="model input side in pixels")
    classes: list[str] = Field(description="class names in ordinal order")
    task: str = Field("4class", description="task framing of the run: 4class, 3class or binary (alzmri.data.tasks)")
    calibrated: bool = Field(description="the run has calibration.json (temperature scaling applied)")
    temperature: float = Field(description="logits are divided by it before the softmax (1.0 = uncalibrated)")


class Explanation(BaseModel):
    explained_class: str = Field(description="class whose Grad-CAM is shown (the predicted class)")
    overlay_png: str = Field(description="data:image/png;base64 URL: the slice with the Grad-CAM heat map")
    slice_png: str = Field(description="data:image/png;base64 URL: the slice as decoded (grayscale)")
    slice_index: int = Field(description="for a volume, the axial slice shown (middle of the central slices); 0 for an image")


class InputInfo(BaseModel):
    filename: str
    kind: str = Field(description="image or volume")
    format: str = Field(description="detected from the bytes: jpeg, png, bmp, tiff, gif, webp, nifti, nifti-gz")
    width: int
    height: int
    n_slices: int | None = Field(None, description="volumes: axial slices")
    central_slices: list[int] | None = Field(None, description="volumes: [first, last + 1] of the averaged central slices")
    aggregation: str | None = None


class Prediction(BaseModel):
    task: str = Field(description="task framing of the run: 4class, 3class or binary (alzmri.data.tasks)")
    predicted_class: str
    confidence: float = Field(description="probability of the predicted class (calibrated when model.calibrated)")
    probabilities: dict[str, float] = Field(description="class -> probability; sums to 1")
    model: ModelInfo
    input: InputInfo
    explanation: Explanation | None = None
    looks_like_mri: bool | None = Field(None, description="images: whether the file looks like a brain MRI slice (docs/inference.md); null for volumes")
    warning: str | None = Field(None, description="set when the input does not look like a brain MRI slice: the prediction is not meaningful")
    disclaimer: str


class BrainSlice(BaseModel):
    index: int = Field(description="the slice's place in the upload order (volumes: among the central slices)")
    name: str = Field(description="file name, or 'slice K' for axial slice K of a volume")
    position: float = Field(description="relative position in the brain, 0..1")
    weight: float = Field(description="attention weight, 1/n, or a baseline's contribution: see slice_weights")
    p_demented: float | None = Field(None, description="slice-level runs: the slice's P(demented)")
    probabilities: dict[str, float] | None = Field(None, description="slice-level runs: the slice's class probabilities")


class BrainPrediction(BaseModel):
    path: str = Field(description="the uploaded file, or the first and a count")
    task: str
    level: str = Field(description="the run's level: brain (one model for the bag) or slice (mean of the slices)")
    kind: str = "brain"
    predicted_class: str
    confidence: float = Field(description="probability of the predicted class")
    probabilities: dict[str, float] = Field(description="class -> probability; sums to 1")
    p_demented: float = Field(description="1 - P(NonDemented)")
    threshold: float | None = Field(None, description="binary runs: Demented when p_demented >= threshold")
    decision: str
    aggregation: str
    slice_weights: str = Field(description="what each slice's weight means")
    n_slices: int
    slices: list[BrainSlice] = Field(description="in position order")
    notes: list[str]
    inputs: list[str] = Field(description="uploaded file names")
    source: str = Field(description="files, file or volume")
    skipped: list[str] = Field(description="unreadable uploads left out, 'name: why'")
    volume: dict | None = Field(None, description="volumes: n_slices (all axial slices) and central_slices [first, last + 1]")
    model: ModelInfo
    disclaimer: str


class Health(BaseModel):
    status: str
    model: ModelInfo
    micro_batching: bool
    limits: dict[str, int]
    batching_stats: dict[str, int] | None = None
    disclaimer: str


class Error(BaseModel):
    detail: str
