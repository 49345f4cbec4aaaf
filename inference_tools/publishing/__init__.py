"""Publish models to a Triton model store and roll them out: validate, upload, switch, verify.

The store (a folder or an S3 prefix) is the single source of truth: each model's
`config.pbtxt` names the versions that servers serve (`version_policy { specific { ... } }`),
so switching to a new version, or back, is one write of one file. Servers run with
`--model-control-mode=explicit` and are asked to reload the model after that write.
"""
