"""The kustomize tree as the tooling reads it: `render` (kubectl kustomize, every overlay and
component) and `validation` (schemas, CRD models, checkov, promtool)."""
