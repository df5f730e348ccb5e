"""Evaluation suites: lm-eval tasks (local YAMLs under ``tasks/``) grouped into ICL and IF parts."""
