"""The FoxML integration contracts as code: schemas, rules, paths and atomic writes. Imports nothing of ours."""

from contracts.errors import ContractError
from contracts.families import FAMILIES, canonical_family, family_spec, model_filename
from contracts.io import canonical_json, read_json, sha256_file, write_atomic_json, write_atomic_yaml
from contracts.manifest import Manifest, TargetIndexEntry, load_manifest, parse_manifest
from contracts.model_meta import (
    CONTRACT_VERSION,
    ContractWarning,
    ModelMeta,
    load_model_meta,
    parse_model_meta,
)
from contracts.paths import get_scoped_artifact_dir, get_target_dir
from contracts.routing import ROUTES, RoutingDecision, RoutingDecisions, load_routing, parse_routing

__all__ = [
    "CONTRACT_VERSION",
    "FAMILIES",
    "ROUTES",
    "ContractError",
    "ContractWarning",
    "Manifest",
    "ModelMeta",
    "RoutingDecision",
    "RoutingDecisions",
    "TargetIndexEntry",
    "canonical_family",
    "canonical_json",
    "family_spec",
    "get_scoped_artifact_dir",
    "get_target_dir",
    "load_manifest",
    "load_model_meta",
    "load_routing",
    "model_filename",
    "parse_manifest",
    "parse_model_meta",
    "parse_routing",
    "read_json",
    "sha256_file",
    "write_atomic_json",
    "write_atomic_yaml",
]
