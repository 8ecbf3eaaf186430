"""releaseflow: self-hosted release orchestration (pipelines, stages, release flows)."""

__version__ = "0.1.0"
