"""Fault and overload scenarios against real local Triton servers, shared by tests and CLI."""
