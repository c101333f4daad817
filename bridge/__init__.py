"""The dashboard bridge: /health, /api/* and /ws/* over the engine's published state."""
