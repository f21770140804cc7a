"""Measure the images and report: compare, diagnose, load, benchmark, composition."""
