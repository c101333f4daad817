"""The engine cycle: prediction → blending → arbitration → gating → sizing → risk → execution (one module a stage)."""
