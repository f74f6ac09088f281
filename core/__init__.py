"""Benchtop's models, training loop and view data; importable without Qt."""
