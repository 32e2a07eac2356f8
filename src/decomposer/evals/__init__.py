"""Evals: golden sets of hand-labelled capabilities, and scoring of extractions against them."""
