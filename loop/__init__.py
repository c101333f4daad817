"""The closed loop: decay detection on the live ledger, retraining triggers and champion/challenger promotion."""
