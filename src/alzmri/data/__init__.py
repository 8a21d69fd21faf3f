"""Data stage: discovery and class mapping, the decode-once cache, splits and manifests."""
