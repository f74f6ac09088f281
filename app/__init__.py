"""Benchtop's window: Qt widgets that draw what core computes; nothing here trains."""
