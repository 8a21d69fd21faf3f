"""Explanations of a run's predictions: Grad-CAM heat maps over the input slice."""

from alzmri.explain.gradcam import gradcam_maps, overlay_heatmap, write_cam_overlays

__all__ = ["gradcam_maps", "overlay_heatmap", "write_cam_overlays"]
