"""Pure compute for foxlake: bars, synthetic market, features, targets, metrics, CV, ranking, routing, families.

Nothing here imports Dagster; training (assets) and live trading call the same functions.
"""
